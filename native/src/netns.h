#ifndef NOOK_NETNS_H
#define NOOK_NETNS_H
int run_netns_listen(int argc, char **argv);
#endif
