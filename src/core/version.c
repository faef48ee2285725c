/* version.c — the version the library was built as, for programs that want
 * to check that the header they compiled against matches the library they
 * run with. */
#include "nabla.h"

const char *nb_version(void) { return NB_VERSION; }
