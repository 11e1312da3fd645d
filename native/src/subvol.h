#ifndef NOOK_SUBVOL_H
#define NOOK_SUBVOL_H
int run_subvol(int argc, char **argv);
#endif
