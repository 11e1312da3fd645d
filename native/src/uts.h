#ifndef NOOK_UTS_H
#define NOOK_UTS_H
int run_sethostname(int argc, char **argv);
#endif
