#ifndef NOOK_FASTCOPY_H
#define NOOK_FASTCOPY_H
#include <stdint.h>
/* Serves one copy session (an F_COPY first frame); see fastcopy.c. */
int run_copy_session(int conn, char *payload, uint32_t len);
#endif
