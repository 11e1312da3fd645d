#ifndef NOOK_VOLUME_H
#define NOOK_VOLUME_H
int run_fscrypt(int argc, char **argv);
int run_mount_into(int argc, char **argv);
int run_umount_from(int argc, char **argv);
#endif
