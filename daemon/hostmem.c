/*
 * hostmem: MemTotal and the default host reserve. See hostmem.h.
 */
#include "hostmem.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "units.h"

int hostmem_parse_total(const char *text, uint64_t *ret_bytes)
{
        const char *p = strstr(text, "MemTotal:");
        unsigned long long kib;
        char unit[8];

        if (!p || (p != text && p[-1] != '\n'))
                return -EINVAL;
        if (sscanf(p, "MemTotal: %llu %7s", &kib, unit) != 2 || strcmp(unit, "kB") != 0)
                return -EINVAL;
        if (kib == 0 || kib > UINT64_MAX / KIB)
                return -ERANGE;
        *ret_bytes = (uint64_t)kib * KIB;
        return 0;
}

int hostmem_total(uint64_t *ret_bytes)
{
        char buf[4096];
        FILE *f = fopen(HOSTMEM_MEMINFO, "re");
        size_t n;

        if (!f)
                return -errno;
        n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        return hostmem_parse_total(buf, ret_bytes);
}

uint64_t hostmem_reserve_default(uint64_t total)
{
        uint64_t first = total < 16 * GIB ? total : 16 * GIB;
        uint64_t rest = total > 16 * GIB ? total - 16 * GIB : 0;

        return size_round_up(384 * MIB + first / 16 + rest / 64, 2 * MIB);
}
