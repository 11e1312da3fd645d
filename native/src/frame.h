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
#define F_COPY 'C'      /* first frame: "in\0PATH\0MODE\0" or "out\0PATH\0MAXBYTES\0" (fastcopy.c) */
#define F_COPY_DONE 'D' /* "<bytes>": the relay wrote that many bytes into the file it was given */
/* agent -> relay */
#define F_COPY_FILE 'F' /* carries the sandbox file's fd (SCM_RIGHTS): the O_TMPFILE (in) or the source (out) */
/* agent -> daemon */
#define F_STARTED 'P' /* decimal pid inside the sandbox */
#define F_STDOUT 'O'
#define F_STDERR 'A'
#define F_EXIT 'X' /* "<exit code> <signal>" */

int frame_write(int fd, char type, const void *data, size_t len);
/* Reads one frame; *data is malloc'd (caller frees). Returns 0, or -1 on EOF/error. */
int frame_read(int fd, char *type, char **data, uint32_t *len);
int write_all(int fd, const void *data, size_t len);
/* Reads exactly len bytes; -1 on EOF or error. */
int read_all(int fd, void *data, size_t len);
/* frame_read for a frame that may carry an fd: *passed gets the one fd sent with it, or -1. */
int frame_read_fd(int fd, char *type, char **data, uint32_t *len, int *passed);
/* frame_write with one fd passed along (SCM_RIGHTS); len at most 4195. */
int frame_write_fd(int fd, char type, const void *data, size_t len, int passfd);
#endif
