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
/* agent -> daemon */
#define F_STARTED 'P' /* decimal pid inside the sandbox */
#define F_STDOUT 'O'
#define F_STDERR 'A'
#define F_EXIT 'X' /* "<exit code> <signal>" */

int frame_write(int fd, char type, const void *data, size_t len);
/* Reads one frame; *data is malloc'd (caller frees). Returns 0, or -1 on EOF/error. */
int frame_read(int fd, char *type, char **data, uint32_t *len);
int write_all(int fd, const void *data, size_t len);
#endif
