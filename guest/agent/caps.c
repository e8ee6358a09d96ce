/*
 * caps: reading and narrowing the agent's capability sets with the capget and
 * capset system calls (version 3: two 32-bit words a set), and no_new_privs.
 */
#include "caps.h"

#include <errno.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

struct sets {
        uint64_t permitted, effective, inheritable;
};

static int get_sets(struct sets *s)
{
        struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
        struct __user_cap_data_struct d[2] = {{0}};

        if (syscall(SYS_capget, &h, d) < 0)
                return -errno;
        s->permitted = d[0].permitted | (uint64_t)d[1].permitted << 32;
        s->effective = d[0].effective | (uint64_t)d[1].effective << 32;
        s->inheritable = d[0].inheritable | (uint64_t)d[1].inheritable << 32;
        return 0;
}

static int set_sets(const struct sets *s)
{
        struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
        struct __user_cap_data_struct d[2] = {
            {(uint32_t)s->effective, (uint32_t)s->permitted, (uint32_t)s->inheritable},
            {(uint32_t)(s->effective >> 32), (uint32_t)(s->permitted >> 32),
             (uint32_t)(s->inheritable >> 32)},
        };

        return syscall(SYS_capset, &h, d) < 0 ? -errno : 0;
}

uint64_t caps_permitted(void)
{
        struct sets s = {0};

        return get_sets(&s) < 0 ? 0 : s.permitted;
}

uint64_t caps_effective(void)
{
        struct sets s = {0};

        return get_sets(&s) < 0 ? 0 : s.effective;
}

int caps_set_effective(int cap, bool on)
{
        struct sets s = {0};
        int r = get_sets(&s);

        if (r < 0)
                return r;
        if (on && !(s.permitted & CAPS_BIT(cap)))
                return -EPERM;
        s.effective = on ? s.effective | CAPS_BIT(cap) : s.effective & ~CAPS_BIT(cap);
        return set_sets(&s);
}

int caps_keep_only(uint64_t keep, const char **what)
{
        struct sets s = {0};
        int r = get_sets(&s);

        *what = "capget";
        if (r < 0)
                return r;
        s.permitted &= keep;
        s.effective = s.permitted;
        s.inheritable = 0;
        *what = "capset";
        if ((r = set_sets(&s)) < 0)
                return r;
        /* Emptied by the capset already (an ambient capability must be inheritable); before
         * Linux 4.3 there is no ambient set (EINVAL). */
        *what = "clearing the ambient set";
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
                return -errno;
        *what = "no_new_privs";
        return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ? -errno : 0;
}
