#ifndef NOOK_FS_H
#define NOOK_FS_H
int run_fs(int argc, char **argv);
#endif
