/*
 * nook-init: the one static binary of nook's native side. Modes:
 *
 *   nook-init listen SOCKET -- CMD...      (host side)
 *     Binds a unix socket at SOCKET (a root-only host path), puts the listening fd at 3
 *     and execs CMD (`crun run --preserve-fds 1 ...`), so the sandbox's PID 1 inherits it.
 *     Nothing inside the sandbox can reach that path; only the daemon can connect.
 *
 *   nook-init subvol snapshot|delete ...     (host side; see subvol.c)
 *
 *   nook-init hide-cgroup2 -- CMD...          (host side: crun on hybrid cgroup hosts)
 *
 *   nook-init fs VERB PATH ...                (inside a sandbox, run by the agent; see fs.c)
 *
 *   nook-init fscrypt ... | mount-into ... | umount-from ...   (host side; see volume.c)
 *
 *   nook-init netns-listen PID PORT           (host side; see netns.c)
 *
 *   nook-init sethostname PID NAME [TICKS]    (host side; see uts.c)
 *   nook-init relay IDLE_MS                   (host side: the egress proxy's splice relay; relay.c)
 *
 *   nook-init init [--listen PATH]          (PID 1 in every sandbox, bind-mounted read-only)
 *     Reaps orphans (without it zombies fill the pids limit). With a listening socket on
 *     fd 3 it is also the exec agent: each connection is one exec session, served by a
 *     forked process (agent.c). SIGTERM is forwarded to every process; init exits when
 *     none is left, which makes the kernel kill the rest.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "fs.h"
#include "netns.h"
#include "uts.h"
#include "relay.h"
#include "subvol.h"
#include "volume.h"

#define AGENT_FD 3
#define EXIT_NOOK 125

static int is_listening_socket(int fd) {
  int on = 0;
  socklen_t len = sizeof on;
  return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) == 0 && on;
}

static void stop_all(void) {
  kill(-1, SIGTERM);
  while (wait(NULL) > 0 || errno == EINTR) {
  }
}

/* gVisor cannot hand a host fd to the sandbox's PID 1: there, init binds the agent socket
 * itself at a path in a directory the runtime shares with the host (runsc --host-uds=create),
 * and the daemon connects to it from the host side. */
static int listen_at(const char *path) {
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof addr.sun_path) return -1;
  strcpy(addr.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  unlink(path);
  mode_t old = umask(0177);
  int ok = bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0 && listen(fd, 128) == 0;
  umask(old);
  if (!ok) {
    fprintf(stderr, "nook-init: cannot listen on %s: %s\n", path, strerror(errno));
    close(fd);
    return -1;
  }
  return fd;
}

static int run_init(int argc, char **argv) {
  prctl(PR_SET_DUMPABLE, 0);
  sigset_t all;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, NULL);
  int listener = is_listening_socket(AGENT_FD) ? AGENT_FD : -1;
  const char *listen_path = argc >= 4 && strcmp(argv[2], "--listen") == 0 ? argv[3] : NULL;
  if (listener < 0 && listen_path) listener = listen_at(listen_path);
  char closed_path[sizeof(((struct sockaddr_un *)0)->sun_path) + 8] = "";
  if (listen_path) snprintf(closed_path, sizeof closed_path, "%s.closed", listen_path);
  if (listener >= 0) fcntl(listener, F_SETFD, FD_CLOEXEC);
  sigset_t wanted;
  sigemptyset(&wanted);
  sigaddset(&wanted, SIGCHLD);
  sigaddset(&wanted, SIGTERM);
  sigaddset(&wanted, SIGINT);
  /* With --listen: SIGUSR1 closes the agent socket (gVisor cannot checkpoint a sandbox that
   * holds a host socket), SIGUSR2 binds it again (after the checkpoint, or a restore). */
  sigaddset(&wanted, SIGUSR1);
  sigaddset(&wanted, SIGUSR2);
  int sfd = signalfd(-1, &wanted, SFD_CLOEXEC);
  for (;;) {
    struct pollfd fds[2] = {{sfd, POLLIN, 0}, {listener, POLLIN, 0}};
    if (poll(fds, listener >= 0 ? 2 : 1, -1) < 0) continue;
    if (fds[0].revents) {
      struct signalfd_siginfo si;
      uint32_t signo = read(sfd, &si, sizeof si) == sizeof si ? si.ssi_signo : 0;
      if (signo == SIGTERM || signo == SIGINT) {
        stop_all();
        return 0;
      }
      if (listen_path && signo == SIGUSR1 && listener >= 0) {
        close(listener);
        unlink(listen_path);
        listener = -1;
        /* The host cannot tell a closed listener from its side (the gofer still holds the
         * host socket): PATH.closed says it is done. */
        int fd = open(closed_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd >= 0) close(fd);
      }
      if (listen_path && signo == SIGUSR2 && listener < 0) {
        unlink(closed_path);
        listener = listen_at(listen_path);
      }
      while (waitpid(-1, NULL, WNOHANG) > 0) {
      }
    }
    if (listener >= 0 && fds[1].revents) {
      int conn = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
      if (conn < 0) continue;
      pid_t pid = fork();
      if (pid == 0) {
        close(listener);
        close(sfd);
        _exit(run_agent_session(conn));
      }
      close(conn);
    }
  }
}

/* nook-init hide-cgroup2 -- CMD...: crun 1.8 refuses hosts whose cgroup2 mount holds a
 * controller next to v1 ones ("hybrid"). Run CMD in a private mount namespace without that
 * mount. The mount is made private first, so its removal can never propagate to the host. */
static int run_hide_cgroup2(int argc, char **argv) {
  if (argc < 4 || strcmp(argv[2], "--") != 0) {
    fprintf(stderr, "usage: nook-init hide-cgroup2 -- CMD...\n");
    return EXIT_NOOK;
  }
  if (unshare(CLONE_NEWNS) != 0) {
    fprintf(stderr, "nook-init: unshare: %s\n", strerror(errno));
    return EXIT_NOOK;
  }
  if (mount(NULL, "/sys/fs/cgroup/unified", NULL, MS_PRIVATE, NULL) == 0) umount2("/sys/fs/cgroup/unified", MNT_DETACH);
  execvp(argv[3], &argv[3]);
  fprintf(stderr, "nook-init: cannot run %s: %s\n", argv[3], strerror(errno));
  return EXIT_NOOK;
}

static int run_listen(int argc, char **argv) {
  if (argc < 5 || strcmp(argv[3], "--") != 0) {
    fprintf(stderr, "usage: nook-init listen SOCKET -- CMD...\n");
    return EXIT_NOOK;
  }
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(argv[2]) >= sizeof addr.sun_path) {
    fprintf(stderr, "nook-init: socket path too long: %s\n", argv[2]);
    return EXIT_NOOK;
  }
  strcpy(addr.sun_path, argv[2]);
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  unlink(argv[2]);
  mode_t old = umask(0177);
  if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, 128) != 0) {
    fprintf(stderr, "nook-init: cannot listen on %s: %s\n", argv[2], strerror(errno));
    return EXIT_NOOK;
  }
  umask(old);
  if (fd != AGENT_FD) {
    dup2(fd, AGENT_FD);
    close(fd);
  }
  execvp(argv[4], &argv[4]);
  fprintf(stderr, "nook-init: cannot run %s: %s\n", argv[4], strerror(errno));
  return EXIT_NOOK;
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "init") == 0) return run_init(argc, argv);
  if (argc >= 2 && strcmp(argv[1], "listen") == 0) return run_listen(argc, argv);
  if (argc >= 2 && strcmp(argv[1], "subvol") == 0) return run_subvol(argc, argv);
  if (argc >= 2 && strcmp(argv[1], "hide-cgroup2") == 0) return run_hide_cgroup2(argc, argv);
  if (argc >= 2 && strcmp(argv[1], "fs") == 0) return run_fs(argc, argv);
  if (argc >= 2 && strcmp(argv[1], "fscrypt") == 0) return run_fscrypt(argc, argv);
  if (argc >= 2 && strcmp(argv[1], "mount-into") == 0) return run_mount_into(argc, argv);
  if (argc >= 2 && strcmp(argv[1], "umount-from") == 0) return run_umount_from(argc, argv);
  if (argc >= 2 && strcmp(argv[1], "netns-listen") == 0) return run_netns_listen(argc, argv);
  if (argc >= 2 && strcmp(argv[1], "sethostname") == 0) return run_sethostname(argc, argv);
  if (argc >= 2 && strcmp(argv[1], "relay") == 0) return run_relay(argc, argv);
  fprintf(stderr, "usage: nook-init init | listen SOCKET -- CMD... | subvol snapshot|delete ...\n");
  return EXIT_NOOK;
}
