#ifndef NOOK_AGENT_H
#define NOOK_AGENT_H
/* Serves one exec session on an accepted connection; returns the process exit code. */
int run_agent_session(int conn);
#endif
