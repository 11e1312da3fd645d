#ifndef NOOK_TREE_H
#define NOOK_TREE_H
#include <sys/types.h>
/* SIGKILLs every descendant of `self` and reaps them, until none is left. `self` must be a
 * child subreaper, so orphans re-parent to it instead of escaping to PID 1. Returns the
 * exit status of `main_child` if it was reaped here (else leaves *main_status untouched). */
void kill_descendants(pid_t self, pid_t main_child, int *main_status, int *main_reaped);
#endif
