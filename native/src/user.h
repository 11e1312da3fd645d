#ifndef NOOK_USER_H
#define NOOK_USER_H
/* NAME, UID, NAME:GROUP or UID:GID. Sets HOME from passwd. Prints why on stderr; returns -1 on failure. */
int switch_user(const char *spec);
#endif
