#ifndef NOOK_RELAY_H
#define NOOK_RELAY_H
int run_relay(int argc, char **argv);
#endif
