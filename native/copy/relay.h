/* What nook-copy.c shares with tar-relay.c: the hashing ring, the answer line, the handoff. */
#ifndef NOOK_COPY_RELAY_H
#define NOOK_COPY_RELAY_H
#include <pthread.h>
#include <stddef.h>
#include <sys/un.h>

#define SLOT_BYTES (1 << 20)

/* The ring: slot_free() gives a buffer of SLOT_BYTES to fill, slot_hash(n) queues its first
 * n bytes for the hasher thread. ring_start() starts the hasher, ring_stop() waits for it. */
pthread_t ring_start(void);
void ring_stop(pthread_t t);
char *slot_free(void);
void slot_hash(size_t len);
/* from -> sink(ctx, chunk) through the ring, hashed; bytes, or -1; *over past max (nook-copy.c). */
long long ring_pump(int from, long long max, int *over, int (*sink)(void *ctx, const char *b, size_t n), void *ctx);
/* {"ok":true,"bytes":N,"sha256":"..." without the closing brace. */
void print_ok(long long total);
void json_text(const char *s);
/* {"ok":false,"code":C,"message":"..."} */
int failed(int code, const char *message);
int unix_socket(const char *path, struct sockaddr_un *addr);
int take_fd(int listener, int timeoutMs);
int run_tar_relay(char **argv);
/* The CLI's commands (cli-side.c). */
int run_send(const char *path);
int run_replace(const char *tmp, const char *target);
#endif
