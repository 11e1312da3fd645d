/* Frames on the agent connection: 1 byte type, 4 bytes big-endian length, payload. */
#ifndef NOOK_FRAME_H
#define NOOK_FRAME_H
#include <stddef.h>
#include <stdint.h>

#define FRAME_MAX (32u * 1024u * 1024u)

/* daemon -> agent */
#define F_REQUEST 'R' /* argc\0argv...\0envc\0env...\0cwd\0user\0[tty\0cols\0rows\0] */
#define F_STDIN 'I'
#define F_STDIN_EOF 'E'
#define F_KILL 'K'
#define F_RESIZE 'W' /* "<cols> <rows>" (PTY sessions) */
#define F_SIGNAL 'S' /* "<signal number>": to the command's process group */
#define F_COPY 'C'   /* first frame, with a pipe fd (SCM_RIGHTS): "in\0PATH\0MODE\0" or "out\0PATH\0MAXBYTES\0" (fastcopy.c) */
#define F_COPY_DONE 'D' /* "<bytes>": every byte of a copy-in is in the pipe */
/* agent -> daemon */
#define F_STARTED 'P' /* decimal pid inside the sandbox */
#define F_STDOUT 'O'
#define F_STDERR 'A'
#define F_EXIT 'X' /* "<exit code> <signal>" */

int frame_write(int fd, char type, const void *data, size_t len);
/* Reads one frame; *data is malloc'd (caller frees). Returns 0, or -1 on EOF/error. */
int frame_read(int fd, char *type, char **data, uint32_t *len);
int write_all(int fd, const void *data, size_t len);
/* frame_read for a connection's first frame: *passed gets the one fd sent with it, or -1. */
int frame_read_fd(int fd, char *type, char **data, uint32_t *len, int *passed);
#endif
