/*
 * hotplug: onlining of offline memory blocks, on kernel uevents and on a
 * slow timer, rate-limited.
 */
#include "hotplug.h"

#include <dirent.h>
#include <errno.h>
#include <linux/netlink.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util.h"

#define MEMORY_DIR "/sys/devices/system/memory"

void hotplug_open(struct hotplug *h, uint64_t now_ms)
{
        char path[UTIL_PATH_MAX];
        struct sockaddr_nl sa = {.nl_family = AF_NETLINK, .nl_groups = 1};

        memset(h, 0, sizeof(*h));
        h->uevent_fd = -1;
        h->present = util_path(path, MEMORY_DIR) && access(path, F_OK) == 0;
        if (!h->present)
                return;
        h->writable = util_path(path, MEMORY_DIR "/auto_online_blocks") && access(path, W_OK) == 0;
        h->scan_wanted = true; /* blocks added before the agent started */
        h->next_scan_ms = now_ms;
        h->uevent_fd =
            socket(AF_NETLINK, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT);
        if (h->uevent_fd >= 0 && bind(h->uevent_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                close(h->uevent_fd);
                h->uevent_fd = -1;
        }
}

void hotplug_close(struct hotplug *h)
{
        if (h->uevent_fd >= 0)
                close(h->uevent_fd);
        h->uevent_fd = -1;
}

int hotplug_poll_fd(const struct hotplug *h)
{
        return h->uevent_fd;
}

int hotplug_timeout(const struct hotplug *h, uint64_t now_ms)
{
        uint64_t due = h->next_scan_ms;

        if (!h->present)
                return -1;
        if (h->scan_wanted && h->last_scan_ms + HOTPLUG_MIN_GAP_MS < due)
                due = h->last_scan_ms + HOTPLUG_MIN_GAP_MS;
        return due > now_ms ? (int)(due - now_ms) : 0;
}

/*
 * Read the pending uevents; any about a memory block asks for a scan. So does an overflow
 * (ENOBUFS, said once, then the uevents that still fitted follow): those lost may have
 * been a block's "add", which the slow timer would otherwise find only up to
 * HOTPLUG_SCAN_MS later.
 */
static void uevents_drain(struct hotplug *h)
{
        char buf[2048];
        ssize_t n;

        for (;;) {
                n = recv(h->uevent_fd, buf, sizeof(buf) - 1, 0);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == ENOBUFS) {
                        if (!h->overflows++)
                                util_log("memory uevents lost (the uevent socket overflowed); "
                                         "looking for offline blocks at once, this time and "
                                         "the next ones (not logged)");
                        h->scan_wanted = true;
                        continue;
                }
                if (n < 0)
                        return; /* EAGAIN: all read */
                buf[n] = '\0';
                /* "add@/devices/system/memory/memory42" (then KEY=value strings) */
                if (strstr(buf, "@/devices/system/memory/memory"))
                        h->scan_wanted = true;
        }
}

/* Online one block; 1 = movable, 0 = online (not movable), <0 = failed. */
static int online_block(const char *name)
{
        char path[UTIL_PATH_MAX];

        snprintf(path, sizeof(path), MEMORY_DIR "/%s/state", name);
        if (util_write_file(path, "online_movable") == 0)
                return 1;
        return util_write_file(path, "online") == 0 ? 0 : -EIO;
}

static void scan(struct hotplug *h)
{
        char path[UTIL_PATH_MAX], state[32];
        unsigned onlined = 0, movable = 0, failed = 0;
        struct dirent *e;
        DIR *dir;

        if (!util_path(path, MEMORY_DIR) || !(dir = opendir(path)))
                return;
        while ((e = readdir(dir))) {
                char rel[UTIL_PATH_MAX];

                if (strncmp(e->d_name, "memory", 6) != 0 || e->d_name[6] < '0' ||
                    e->d_name[6] > '9')
                        continue;
                snprintf(rel, sizeof(rel), MEMORY_DIR "/%s/state", e->d_name);
                if (util_read_file(rel, state, sizeof(state)) <= 0 ||
                    strncmp(state, "offline", 7) != 0)
                        continue;
                int r = online_block(e->d_name);
                if (r < 0) {
                        failed++;
                        continue;
                }
                onlined++;
                movable += (unsigned)r;
        }
        closedir(dir);
        h->onlined += onlined;
        h->movable += movable;
        if (failed > h->failed)
                util_log("%u offline memory blocks would not come online", failed);
        h->failed = failed;
        if (onlined)
                util_log("brought %u memory blocks online (%u movable)", onlined, movable);
}

void hotplug_run(struct hotplug *h, short revents, uint64_t now_ms)
{
        if (h->uevent_fd >= 0 && revents)
                uevents_drain(h);
        if (!h->present || hotplug_timeout(h, now_ms) != 0)
                return;
        scan(h);
        h->scan_wanted = false;
        h->last_scan_ms = now_ms;
        h->next_scan_ms = now_ms + HOTPLUG_SCAN_MS;
}
