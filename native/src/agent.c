/*
 * One exec session, in a process forked by PID 1 for one accepted connection from the
 * daemon. It runs the command with pipes for stdio, relays them as frames, and is a child
 * subreaper: whatever the command starts (daemons included) re-parents here, so when the
 * command ends, times out, or the daemon goes away, the whole tree is killed.
 */
#define _GNU_SOURCE
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <termios.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fastcopy.h"
#include "frame.h"
#include "tree.h"
#include "user.h"

extern char **environ;

struct request {
  char **argv;
  char **envp;
  const char *cwd;
  const char *user;
  int tty;
  unsigned short cols, rows;
};

/* Splits "argc\0a\0b\0envc\0k=v\0cwd\0user\0" into a request. Pointers into buf. */
static int parse_request(char *buf, uint32_t len, struct request *r) {
  char *p = buf, *end = buf + len;
#define NEXT() ({ char *s_ = p; if (p >= end) return -1; p += strnlen(p, (size_t)(end - p)) + 1; s_; })
  long argc = strtol(NEXT(), NULL, 10);
  if (argc < 1 || argc > 65536) return -1;
  r->argv = calloc((size_t)argc + 1, sizeof(char *));
  for (long i = 0; i < argc; i++) r->argv[i] = NEXT();
  long envc = strtol(NEXT(), NULL, 10);
  if (envc < 0 || envc > 65536) return -1;
  r->envp = calloc((size_t)envc + 1, sizeof(char *));
  for (long i = 0; i < envc; i++) r->envp[i] = NEXT();
  r->cwd = NEXT();
  r->user = NEXT();
  r->tty = 0;
  if (p < end) {
    r->tty = strcmp(NEXT(), "1") == 0;
    r->cols = (unsigned short)strtoul(NEXT(), NULL, 10);
    r->rows = (unsigned short)strtoul(NEXT(), NULL, 10);
  }
#undef NEXT
  return 0;
}

static void child_exec(const struct request *r, int in, int out, int err, const char *pty_slave) {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  for (int s = 1; s < NSIG; s++) signal(s, SIG_DFL);
  setsid();
  if (pty_slave) {
    /* A new session opening its terminal: it becomes the controlling tty, so Ctrl-C
     * (a 0x03 byte) signals the foreground process group like on any terminal. */
    int slave = open(pty_slave, O_RDWR);
    if (slave < 0) _exit(125);
    /* Best effort: gVisor (runsc 20221219) refuses it with EINVAL. The shell then works
     * without job control there; a Ctrl-C still reaches it as a signal frame. */
    ioctl(slave, TIOCSCTTY, 0);
    in = out = err = slave;
  }
  dup2(in, 0);
  dup2(out, 1);
  dup2(err, 2);
  if (*r->cwd && chdir(r->cwd) != 0) {
    fprintf(stderr, "nook: cannot enter working directory %s: %s\n", r->cwd, strerror(errno));
    _exit(125);
  }
  if (*r->user && switch_user(r->user) != 0) _exit(125);
  /* execvp looks PATH up in environ, so install the command's environment first. */
  environ = r->envp;
  execvp(r->argv[0], r->argv);
  int e = errno;
  fprintf(stderr, "nook: cannot run '%s': %s\n", r->argv[0], strerror(e));
  _exit((e == ENOENT || e == ENOTDIR) ? 127 : 126);
}

/* Stdin bytes waiting for the command to read them: never block the relay on a full pipe. */
#define PENDING_MAX (8u * 1024u * 1024u)
#define PIPE_BYTES (1024 * 1024)

struct pending {
  char *data;
  size_t len, off;
  int eof;
};

static void pending_add(struct pending *p, const char *data, size_t len) {
  /* Drop what the command already read before growing: copying a consumed prefix on every
   * frame made large copy-ins quadratic. */
  if (p->off > 0) {
    memmove(p->data, p->data + p->off, p->len - p->off);
    p->len -= p->off;
    p->off = 0;
  }
  char *grown = realloc(p->data, p->len + len);
  if (!grown) return;
  p->data = grown;
  memcpy(p->data + p->len, data, len);
  p->len += len;
}

int run_agent_session(int conn) {
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  prctl(PR_SET_DUMPABLE, 0);
  char type;
  char *buf;
  uint32_t len;
  struct request req;
  int passed;
  if (frame_read_fd(conn, &type, &buf, &len, &passed) != 0) return 125;
  if (passed >= 0) close(passed); /* nothing sent to the agent carries an fd */
  if (type == F_COPY) return run_copy_session(conn, buf, len);
  if (type != F_REQUEST || parse_request(buf, len, &req) != 0) return 125;

  int in[2], out[2], err[2];
  int master = -1;
  char slave_name[128] = "";
  if (req.tty) {
    master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0 || ptsname_r(master, slave_name, sizeof slave_name) != 0) return 125;
    struct winsize ws = {.ws_row = req.rows ? req.rows : 24, .ws_col = req.cols ? req.cols : 80};
    ioctl(master, TIOCSWINSZ, &ws);
    /* One fd does it all: stdin is written to the master, output is read from it. */
    in[1] = out[0] = master;
    in[0] = out[1] = err[0] = err[1] = -1;
  } else if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) {
    return 125;
  } else {
    /* Larger pipes: fewer wake-ups per megabyte on bulk stdin and output (best effort). */
    fcntl(in[1], F_SETPIPE_SZ, PIPE_BYTES);
    fcntl(out[0], F_SETPIPE_SZ, PIPE_BYTES);
  }
  /* SIGCHLD and SIGTERM (the sandbox is stopping) are read through a signalfd; SIGPIPE
   * stays blocked so a write error is an error, not a death. */
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigaddset(&chld, SIGTERM);
  sigaddset(&chld, SIGPIPE);
  sigprocmask(SIG_SETMASK, &chld, NULL);
  sigdelset(&chld, SIGPIPE);
  int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);

  pid_t child = fork();
  if (child < 0) return 125;
  if (child == 0) child_exec(&req, in[0], out[1], err[1], req.tty ? slave_name : NULL);
  if (!req.tty) {
    close(in[0]);
    close(out[1]);
    close(err[1]);
  }
  fcntl(in[1], F_SETFL, O_NONBLOCK);
  char pidtext[32];
  int n = snprintf(pidtext, sizeof pidtext, "%d", child);
  frame_write(conn, F_STARTED, pidtext, (size_t)n);

  struct pending stdin_buf = {0};
  int status = 0, reaped = 0, stdin_fd = in[1], out_fd = out[0], err_fd = err[0];
  int conn_open = 1;
  static char chunk[1 << 20];
  for (;;) {
    if (reaped && out_fd < 0 && err_fd < 0) break;
    struct pollfd fds[5];
    int nf = 0;
    int i_conn = -1, i_out = -1, i_err = -1, i_sig = -1, i_in = -1;
    /* Back-pressure: stop taking stdin from the daemon while the command lags behind. */
    if (conn_open && stdin_buf.len - stdin_buf.off < PENDING_MAX) fds[i_conn = nf++] = (struct pollfd){conn, POLLIN, 0};
    if (out_fd >= 0) fds[i_out = nf++] = (struct pollfd){out_fd, POLLIN, 0};
    if (err_fd >= 0) fds[i_err = nf++] = (struct pollfd){err_fd, POLLIN, 0};
    if (!reaped) fds[i_sig = nf++] = (struct pollfd){sfd, POLLIN, 0};
    if (stdin_fd >= 0 && stdin_buf.off < stdin_buf.len) fds[i_in = nf++] = (struct pollfd){stdin_fd, POLLOUT, 0};
    /* Once the command is reaped (and what it left killed), nothing holds the terminal's
     * slave: Linux says so with EIO on the master, gVisor never does. Drain, then stop. */
    int draining = reaped && master >= 0 && out_fd == master;
    int ready = poll(fds, (nfds_t)nf, draining ? 50 : -1);
    if (ready < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (ready == 0 && draining) {
      close(master);
      out_fd = stdin_fd = master = -1;
      continue;
    }
    if (i_conn >= 0 && fds[i_conn].revents) {
      char t;
      char *data;
      uint32_t dl;
      if (frame_read(conn, &t, &data, &dl) != 0) {
        /* The daemon is gone (or timed us out by hanging up): nothing may outlive it. */
        conn_open = 0;
        kill_descendants(getpid(), child, &status, &reaped);
        if (!reaped) {
          status = SIGKILL;
          reaped = 1;
        }
        continue;
      }
      if (t == F_STDIN) pending_add(&stdin_buf, data, dl);
      else if (t == F_STDIN_EOF) stdin_buf.eof = !req.tty; /* a terminal stays open until its shell exits */
      else if (t == F_KILL) kill_descendants(getpid(), child, &status, &reaped);
      else if (t == F_RESIZE && master >= 0) {
        unsigned cols = 0, rows = 0;
        if (sscanf(data, "%u %u", &cols, &rows) == 2) {
          struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
          ioctl(master, TIOCSWINSZ, &ws); /* the kernel sends SIGWINCH to the foreground group */
        }
      } else if (t == F_SIGNAL && !reaped) {
        int sig = atoi(data);
        if (sig > 0 && sig < NSIG) kill(-child, sig);
      }
      free(data);
    }
    if (i_in >= 0 && fds[i_in].revents) {
      ssize_t w = write(stdin_fd, stdin_buf.data + stdin_buf.off, stdin_buf.len - stdin_buf.off);
      if (w > 0) stdin_buf.off += (size_t)w;
      else if (w < 0 && errno != EAGAIN) stdin_buf.eof = 1, stdin_buf.off = stdin_buf.len;
    }
    if (stdin_fd >= 0 && stdin_buf.eof && stdin_buf.off >= stdin_buf.len) {
      close(stdin_fd);
      stdin_fd = -1;
    }
    int *fdp[2] = {&out_fd, &err_fd};
    int idx[2] = {i_out, i_err};
    char kinds[2] = {F_STDOUT, F_STDERR};
    for (int k = 0; k < 2; k++) {
      if (idx[k] < 0 || !fds[idx[k]].revents) continue;
      ssize_t r = read(*fdp[k], chunk, sizeof chunk);
      if (r > 0) {
        if (conn_open && frame_write(conn, kinds[k], chunk, (size_t)r) != 0) {
          /* The other end hung up while we wrote (a copy relay stopping at its bound): the
           * same as a hang-up seen on read, or the command would run on with nobody reading. */
          conn_open = 0;
          kill_descendants(getpid(), child, &status, &reaped);
          if (!reaped) {
            status = SIGKILL;
            reaped = 1;
          }
        }
      } else if (r == 0 || errno != EAGAIN) {
        /* A PTY master reads EIO once every holder of the slave is gone: its EOF. */
        if (*fdp[k] == master) stdin_fd = -1, master = -1;
        close(*fdp[k]);
        *fdp[k] = -1;
      }
    }
    if (i_sig >= 0 && fds[i_sig].revents) {
      struct signalfd_siginfo si;
      int stopping = 0;
      while (read(sfd, &si, sizeof si) == sizeof si) stopping |= si.ssi_signo == SIGTERM;
      if (stopping) {
        /* The sandbox is stopping: end the command and tell the daemon why. */
        kill_descendants(getpid(), child, &status, &reaped);
        status = SIGTERM;
        reaped = 1;
      }
      int st;
      pid_t r;
      while ((r = waitpid(-1, &st, WNOHANG)) > 0) {
        if (r == child) {
          status = st;
          reaped = 1;
        }
      }
      /* The command has ended: what it left running dies with it, which also closes
       * the output pipes those processes held. */
      if (reaped) kill_descendants(getpid(), child, &status, &reaped);
    }
  }
  if (!conn_open) return 0;
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : SIGKILL);
  int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  n = snprintf(pidtext, sizeof pidtext, "%d %d", code, sig);
  frame_write(conn, F_EXIT, pidtext, (size_t)n);
  /* Let the daemon hang up first: closing here could fail its write of a frame still in
   * flight (stdin it sent before the command ended) with EPIPE, losing the exit status. */
  struct pollfd linger = {conn, POLLIN, 0};
  while (poll(&linger, 1, 10000) > 0 && read(conn, chunk, sizeof chunk) > 0) {
  }
  return 0;
}
