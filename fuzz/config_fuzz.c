/*
 * config_fuzz: libFuzzer target for the INI reader shared by dynmem.conf and
 * dynmem-sim scenarios (lib/config.c on inih). The input is a whole file.
 * After a successful load it checks what the rest of dynmem relies on: every
 * VM's settings pass settings_check(), names are valid, and backend keys
 * carry a line number inside the file. A failed load must leave an empty
 * config and at least one message, each starting with the file's name.
 *
 * Build and run: fuzz/run.sh config SECONDS.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

#define CHECK(cond)                                                                                \
        do {                                                                                       \
                if (!(cond))                                                                       \
                        abort();                                                                   \
        } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *text = malloc(size + 1);
        struct config cfg;
        struct config_diag diag = {0};
        char err[256];

        if (!text)
                return 0;
        memcpy(text, data, size);
        text[size] = '\0';
        unsigned lines = 1;
        for (size_t i = 0; i < size; i++)
                lines += text[i] == '\n';
        int r = config_load_string("fuzz.ini", text, &cfg, &diag);
        if (r == 0) {
                CHECK(diag.count == 0);
                for (size_t i = 0; i < cfg.n_vms; i++) {
                        const struct config_vm *vm = &cfg.vms[i];
                        CHECK(config_name_valid(vm->name));
                        CHECK(settings_check(&vm->settings, err, sizeof(err)) == 0);
                        for (size_t j = 0; j < vm->n_extra; j++)
                                CHECK(vm->extra[j].line >= 1 && vm->extra[j].line <= lines);
                }
                config_free(&cfg);
        } else {
                CHECK(diag.count > 0);
                CHECK(cfg.n_vms == 0 && cfg.vms == NULL);
                for (size_t i = 0; i < diag.count; i++)
                        CHECK(strncmp(diag.messages[i], "fuzz.ini", 8) == 0);
        }
        config_diag_free(&diag);
        free(text);
        return 0;
}
