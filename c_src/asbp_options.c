#include "asbp_options.h"

#include <string.h>

void asbp_options_init(asbp_options *o)
{
    memset(o, 0, sizeof *o);
    o->patroni_verify_ssl = -1;
}
