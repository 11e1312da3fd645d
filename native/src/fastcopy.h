#ifndef NOOK_FASTCOPY_H
#define NOOK_FASTCOPY_H
#include <stdint.h>
/* Serves one copy session (an F_COPY first frame with its pipe fd); see fastcopy.c. */
int run_copy_session(int conn, int pipefd, char *payload, uint32_t len);
#endif
