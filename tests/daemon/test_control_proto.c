/*
 * Tests for control: the control protocol's requests and replies, every
 * malformed shape refused with the right errno.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "control.h"
#include "units.h"

static int parse(const char *line, struct control_request *req)
{
        char err[CONTROL_ERROR_MAX];

        return control_request_parse(line, strlen(line), req, err, sizeof(err));
}

static void parse_err(const char *line, int expected, const char *needle)
{
        struct control_request req;
        char err[CONTROL_ERROR_MAX] = "";

        assert_int_equal(control_request_parse(line, strlen(line), &req, err, sizeof(err)),
                         expected);
        if (!strstr(err, needle))
                fail_msg("\"%s\" not in \"%s\" for %s", needle, err, line);
}

static void requests_parse(void **state)
{
        struct control_request req;

        assert_int_equal(parse("{\"version\":1,\"command\":\"list\"}", &req), 0);
        assert_int_equal(req.command, CONTROL_LIST);
        control_request_free(&req);
        assert_int_equal(parse(" {\"command\":\"stop\",\"version\":1,\"name\":\"web1\","
                               "\"force\":true}\r",
                               &req),
                         0);
        assert_int_equal(req.command, CONTROL_STOP);
        assert_string_equal(req.name, "web1");
        assert_true(req.force);
        control_request_free(&req);
        assert_int_equal(parse("{\"version\":1,\"command\":\"set\",\"name\":\"a.b-c_d\","
                               "\"settings\":{\"weight\":10,\"maximum_bytes\":4294967296,"
                               "\"dynamic\":false}}",
                               &req),
                         0);
        assert_int_equal(req.given, SETTINGS_WEIGHT | SETTINGS_MAXIMUM | SETTINGS_DYNAMIC);
        assert_int_equal(req.settings.weight, 10);
        assert_true(req.settings.maximum_bytes == 4 * GIB);
        assert_false(req.settings.dynamic);
        control_request_free(&req);
        assert_int_equal(parse("{\"version\":1,\"command\":\"create\",\"name\":\"n\","
                               "\"autostart\":true,\"backend\":{\"trace\":\"/x.csv\"}}",
                               &req),
                         0);
        assert_true(req.autostart);
        assert_int_equal(req.n_keys, 1);
        assert_string_equal(req.keys[0].key, "trace");
        assert_string_equal(req.keys[0].value, "/x.csv");
        control_request_free(&req);
}

/* set takes "autostart" alone; off is carried as false, not left out. */
static void set_takes_autostart(void **state)
{
        struct control_request req;
        char *line;

        assert_int_equal(parse("{\"version\":1,\"command\":\"set\",\"name\":\"w\","
                               "\"autostart\":false}",
                               &req),
                         0);
        assert_int_equal(req.command, CONTROL_SET);
        assert_true(req.autostart_given);
        assert_false(req.autostart);
        assert_int_equal(req.given, 0);
        line = control_request_format(&req);
        assert_non_null(line);
        assert_non_null(strstr(line, "\"autostart\":false"));
        free(line);
        control_request_free(&req);
        assert_int_equal(parse("{\"version\":1,\"command\":\"set\",\"name\":\"w\","
                               "\"autostart\":true,\"settings\":{\"weight\":10}}",
                               &req),
                         0);
        assert_true(req.autostart_given && req.autostart);
        control_request_free(&req);
        /* without it, nothing of autostart is said */
        assert_int_equal(parse("{\"version\":1,\"command\":\"set\",\"name\":\"w\","
                               "\"settings\":{\"weight\":10}}",
                               &req),
                         0);
        assert_false(req.autostart_given);
        line = control_request_format(&req);
        assert_null(strstr(line, "autostart"));
        free(line);
        control_request_free(&req);
        parse_err("{\"version\":1,\"command\":\"set\",\"name\":\"w\",\"autostart\":\"yes\"}",
                  -EINVAL, "autostart: expected true or false");
}

/* set takes "reset": settings by JSON name, "autostart", or "all"; alone, round-tripped. */
static void set_takes_a_reset(void **state)
{
        struct control_request req;
        char *line;

        assert_int_equal(parse("{\"version\":1,\"command\":\"set\",\"name\":\"w\","
                               "\"reset\":[\"weight\",\"buffer_percent\",\"autostart\"]}",
                               &req),
                         0);
        assert_int_equal(req.reset, SETTINGS_WEIGHT | SETTINGS_BUFFER);
        assert_true(req.reset_autostart);
        assert_int_equal(req.given, 0);
        assert_false(req.autostart_given);
        line = control_request_format(&req);
        assert_non_null(line);
        assert_non_null(strstr(line, "\"reset\":[\"buffer_percent\",\"weight\",\"autostart\"]"));
        free(line);
        control_request_free(&req);
        assert_int_equal(parse("{\"version\":1,\"command\":\"set\",\"name\":\"w\","
                               "\"reset\":[\"all\"]}",
                               &req),
                         0);
        assert_int_equal(req.reset, SETTINGS_ALL);
        assert_true(req.reset_autostart);
        line = control_request_format(&req);
        assert_non_null(strstr(line, "\"reset\":[\"all\"]"));
        free(line);
        control_request_free(&req);
        /* without autostart, "all" of the settings is spelt out */
        req = (struct control_request){.command = CONTROL_SET, .name = "w", .reset = SETTINGS_ALL};
        line = control_request_format(&req);
        assert_null(strstr(line, "\"all\""));
        assert_non_null(strstr(line, "\"block_bytes\""));
        assert_null(strstr(line, "autostart"));
        free(line);
        /* the CLI's words: the options' names */
        unsigned reset = 0;
        bool autostart = false;
        assert_int_equal(control_reset_word("buffer", &reset, &autostart), 0);
        assert_int_equal(control_reset_word("startup_bytes", &reset, &autostart), 0);
        assert_int_equal(reset, SETTINGS_BUFFER | SETTINGS_STARTUP);
        assert_false(autostart);
        assert_int_equal(control_reset_word("bogus", &reset, &autostart), -EINVAL);
        /* what is refused */
        parse_err("{\"version\":1,\"command\":\"set\",\"name\":\"w\",\"reset\":[]}", -EINVAL,
                  "reset: expected a non-empty array");
        parse_err("{\"version\":1,\"command\":\"set\",\"name\":\"w\",\"reset\":\"all\"}", -EINVAL,
                  "reset: expected a non-empty array");
        parse_err("{\"version\":1,\"command\":\"set\",\"name\":\"w\",\"reset\":[\"buffer\"]}",
                  -EINVAL, "reset: \"buffer\" is not a setting, \"autostart\" or \"all\"");
        parse_err("{\"version\":1,\"command\":\"set\",\"name\":\"w\",\"reset\":[7]}", -EINVAL,
                  "reset: \"(not a string)\" is not a setting");
        parse_err("{\"version\":1,\"command\":\"set\",\"name\":\"w\",\"reset\":[\"weight\"],"
                  "\"settings\":{\"buffer_percent\":30}}",
                  -EINVAL, "w: set: reset and changes in one request");
        parse_err("{\"version\":1,\"command\":\"set\",\"name\":\"w\",\"reset\":[\"weight\"],"
                  "\"autostart\":true}",
                  -EINVAL, "w: set: reset and changes in one request");
        parse_err("{\"version\":1,\"command\":\"create\",\"name\":\"w\",\"reset\":[\"all\"]}",
                  -EINVAL, "unknown field \"reset\" in a create request");
}

/* The admission hook's request for a VM arriving by live migration. */
static void admit_takes_an_incoming_size(void **state)
{
        struct control_request req;
        char *line;

        assert_int_equal(parse("{\"version\":1,\"command\":\"admit\",\"name\":\"web\","
                               "\"incoming_bytes\":805306368,\"settings\":{\"weight\":9000}}",
                               &req),
                         0);
        assert_int_equal(req.command, CONTROL_ADMIT);
        assert_true(req.incoming_bytes == 768 * MIB);
        assert_int_equal(req.settings.weight, 9000);
        line = control_request_format(&req);
        assert_non_null(line);
        assert_non_null(strstr(line, "\"incoming_bytes\":805306368"));
        free(line);
        control_request_free(&req);
        /* a start's admission has none */
        assert_int_equal(parse("{\"version\":1,\"command\":\"admit\",\"name\":\"web\"}", &req), 0);
        assert_true(req.incoming_bytes == 0);
        control_request_free(&req);
        parse_err("{\"version\":1,\"command\":\"admit\",\"name\":\"w\",\"incoming_bytes\":0}",
                  -EINVAL, "incoming_bytes: expected a whole number from 1");
        parse_err("{\"version\":1,\"command\":\"admit\",\"name\":\"w\",\"incoming_bytes\":-5}",
                  -EINVAL, "incoming_bytes");
        parse_err("{\"version\":1,\"command\":\"admit\",\"name\":\"w\","
                  "\"incoming_bytes\":17592186044417}",
                  -EINVAL, "incoming_bytes"); /* over 16 TiB: no VM is that large */
        parse_err("{\"version\":1,\"command\":\"admit\",\"name\":\"w\",\"incoming_bytes\":\"1G\"}",
                  -EINVAL, "incoming_bytes");
        parse_err("{\"version\":1,\"command\":\"start\",\"name\":\"w\",\"incoming_bytes\":1}",
                  -EINVAL, "unknown field \"incoming_bytes\"");
}

static void requests_refuse_bad_envelopes(void **state)
{
        parse_err("", -EINVAL, "malformed request");
        parse_err("{", -EINVAL, "malformed request");
        parse_err("[]", -EINVAL, "expected a JSON object");
        parse_err("{\"command\":\"list\"}", -EPROTO, "version");
        parse_err("{\"version\":\"1\",\"command\":\"list\"}", -EPROTO, "version");
        parse_err("{\"version\":2,\"command\":\"list\"}", -EPROTO,
                  "unsupported protocol version 2");
        parse_err("{\"version\":1}", -EINVAL, "command");
        parse_err("{\"version\":1,\"command\":7}", -EINVAL, "command");
        parse_err("{\"version\":1,\"command\":\"reboot\"}", -EOPNOTSUPP, "unknown command");
        parse_err("{\"version\":1,\"command\":\"list\",\"name\":\"x\"}", -EINVAL,
                  "unknown field \"name\" in a list request");
        parse_err("{\"version\":1,\"command\":\"list\",\"version\":1}", -EINVAL, "malformed");
        parse_err("{\"version\":1,\"command\":\"list\"} {}", -EINVAL, "malformed");
        parse_err("{\"version\":1,\"command\":\"start\",\"name\":\"w\",\"force\":true}", -EINVAL,
                  "unknown field \"force\"");
}

static void requests_refuse_bad_fields(void **state)
{
        parse_err("{\"version\":1,\"command\":\"show\"}", -EINVAL, "name");
        parse_err("{\"version\":1,\"command\":\"show\",\"name\":\"\"}", -EINVAL, "invalid VM name");
        parse_err("{\"version\":1,\"command\":\"show\",\"name\":\"a/b\"}", -EINVAL, "invalid");
        parse_err("{\"version\":1,\"command\":\"show\",\"name\":\"-x\"}", -EINVAL, "invalid");
        parse_err("{\"version\":1,\"command\":\"stop\",\"name\":\"w\",\"force\":1}", -EINVAL,
                  "force");
        parse_err("{\"version\":1,\"command\":\"set\",\"name\":\"w\"}", -EINVAL,
                  "nothing to change");
        parse_err("{\"version\":1,\"command\":\"set\",\"name\":\"w\",\"settings\":{}}", -EINVAL,
                  "nothing to change");
        parse_err("{\"version\":1,\"command\":\"set\",\"name\":\"w\",\"settings\":[]}", -EINVAL,
                  "settings");
        parse_err("{\"version\":1,\"command\":\"set\",\"name\":\"w\",\"settings\":{\"weight\":-1}}",
                  -EINVAL, "weight");
        parse_err("{\"version\":1,\"command\":\"set\",\"name\":\"w\",\"settings\":"
                  "{\"weight\":4294967296}}",
                  -EINVAL, "weight");
        parse_err("{\"version\":1,\"command\":\"set\",\"name\":\"w\",\"settings\":"
                  "{\"startup_bytes\":1.5}}",
                  -EINVAL, "startup_bytes");
        parse_err("{\"version\":1,\"command\":\"set\",\"name\":\"w\",\"settings\":"
                  "{\"dynamic\":\"yes\"}}",
                  -EINVAL, "dynamic");
        parse_err("{\"version\":1,\"command\":\"set\",\"name\":\"w\",\"settings\":{\"x\":1}}",
                  -EINVAL, "unknown setting");
        parse_err("{\"version\":1,\"command\":\"create\",\"name\":\"w\",\"backend\":"
                  "{\"Trace\":\"x\"}}",
                  -EINVAL, "backend");
        parse_err("{\"version\":1,\"command\":\"create\",\"name\":\"w\",\"backend\":"
                  "{\"trace\":\"\"}}",
                  -EINVAL, "backend");
        parse_err("{\"version\":1,\"command\":\"create\",\"name\":\"w\",\"backend\":"
                  "{\"trace\":[]}}",
                  -EINVAL, "backend");
}

static void requests_have_a_size_limit(void **state)
{
        size_t n = CONTROL_REQUEST_MAX + 1;
        char *line = malloc(n + 1);
        struct control_request req;
        char err[CONTROL_ERROR_MAX];

        assert_non_null(line);
        memset(line, ' ', n);
        line[n] = '\0';
        assert_int_equal(control_request_parse(line, n, &req, err, sizeof(err)), -EMSGSIZE);
        free(line);
}

static void requests_limit_backend_keys(void **state)
{
        char line[8192] = "{\"version\":1,\"command\":\"create\",\"name\":\"w\",\"backend\":{";
        struct control_request req;

        for (int i = 0; i <= CONTROL_KEYS_MAX; i++)
                snprintf(line + strlen(line), sizeof(line) - strlen(line), "%s\"k%d\":\"v\"",
                         i ? "," : "", i);
        strcat(line, "}}");
        parse_err(line, -EINVAL, "at most 64 keys");
        (void)req;
}

static void requests_round_trip(void **state)
{
        struct control_request in = {.command = CONTROL_CREATE, .force = false, .autostart = true};
        struct control_request out;
        struct config_kv key = {.key = "trace", .value = "/srv/a b.csv"};
        char *line;

        snprintf(in.name, sizeof(in.name), "web-3");
        in.settings.startup_bytes = 2 * GIB;
        in.settings.buffer_percent = 35;
        in.given = SETTINGS_STARTUP | SETTINGS_BUFFER;
        in.keys = &key;
        in.n_keys = 1;
        line = control_request_format(&in);
        assert_non_null(line);
        assert_int_equal(parse(line, &out), 0);
        assert_int_equal(out.command, CONTROL_CREATE);
        assert_string_equal(out.name, "web-3");
        assert_int_equal(out.given, in.given);
        assert_true(out.settings.startup_bytes == 2 * GIB);
        assert_int_equal(out.settings.buffer_percent, 35);
        assert_true(out.autostart);
        assert_string_equal(out.keys[0].value, "/srv/a b.csv");
        control_request_free(&out);
        free(line);
        for (unsigned c = 0; c < CONTROL_N_COMMANDS; c++) {
                struct control_request r = {.command = (enum control_command)c,
                                            .given = SETTINGS_WEIGHT};
                snprintf(r.name, sizeof(r.name), "x");
                line = control_request_format(&r);
                assert_non_null(line);
                assert_int_equal(parse(line, &out), 0);
                assert_int_equal(out.command, c);
                control_request_free(&out);
                free(line);
        }
}

static void replies_parse(void **state)
{
        char err[CONTROL_ERROR_MAX];
        json_t *reply = NULL;
        char *line = control_reply_ok(json_pack("{s:i}", "answer", 42));

        assert_int_equal(control_reply_parse(line, strlen(line), &reply, err, sizeof(err)), 0);
        assert_int_equal(json_integer_value(json_object_get(reply, "answer")), 42);
        json_decref(reply);
        free(line);
        line =
            control_reply_error(EPERM, "%s: cannot change startup while the VM is running", "web1");
        assert_int_equal(control_reply_parse(line, strlen(line), &reply, err, sizeof(err)), -EPERM);
        assert_string_equal(err, "web1: cannot change startup while the VM is running");
        free(line);
        assert_int_equal(control_reply_parse("{\"version\":1,\"ok\":false,\"errno\":99999}", 38,
                                             &reply, err, sizeof(err)),
                         -EIO);
        assert_int_equal(control_reply_parse("{\"version\":1}", 13, &reply, err, sizeof(err)),
                         -EBADMSG);
        assert_int_equal(control_reply_parse("nonsense", 8, &reply, err, sizeof(err)), -EBADMSG);
        assert_int_equal(
            control_reply_parse("{\"version\":9,\"ok\":true}", 23, &reply, err, sizeof(err)),
            -EPROTO);
}

/* An error quoting a request cut through a multibyte character is still a reply. */
static void error_replies_are_valid_utf8(void **state)
{
        static const char *const quoted[] = {
            "x\xc3\xa9\xc3", /* a cut character */
            "\xff\xfeok",    /* no UTF-8 at all */
            "\xed\xa0\x80",  /* a surrogate */
            "\xe0\x80\x80",  /* overlong */
        };
        char err[CONTROL_ERROR_MAX], request[200], *line;
        json_t *reply = NULL;

        for (size_t i = 0; i < sizeof(quoted) / sizeof(quoted[0]); i++) {
                line = control_reply_error(EINVAL, "unknown command \"%.64s\"", quoted[i]);
                assert_non_null(line);
                assert_int_equal(control_reply_parse(line, strlen(line), &reply, err, sizeof(err)),
                                 -EINVAL);
                assert_non_null(strstr(err, "unknown command"));
                free(line);
        }
        /* a long command name of two-byte characters, as the daemon quotes it */
        snprintf(request, sizeof(request), "{\"version\":1,\"command\":\"x");
        for (int i = 0; i < 40; i++)
                strcat(request, "\xc3\xa9");
        strcat(request, "\"}");
        struct control_request req;
        assert_int_equal(control_request_parse(request, strlen(request), &req, err, sizeof(err)),
                         -EOPNOTSUPP);
        line = control_reply_error(EOPNOTSUPP, "%s", err);
        assert_non_null(line);
        assert_int_equal(control_reply_parse(line, strlen(line), &reply, err, sizeof(err)),
                         -EOPNOTSUPP);
        free(line);
        /* what is valid stays as it was */
        line = control_reply_error(EINVAL, "%s", "caf\xc3\xa9 \xf0\x9f\x90\xb1");
        assert_int_equal(control_reply_parse(line, strlen(line), &reply, err, sizeof(err)),
                         -EINVAL);
        assert_string_equal(err, "caf\xc3\xa9 \xf0\x9f\x90\xb1");
        free(line);
}

/* A backend's refusal cut through a multibyte character still lets the VM be listed. */
static void vm_json_takes_a_cut_refusal(void **state)
{
        struct vm vm = {.state = VM_OFF};
        json_t *obj;

        snprintf(vm.name, sizeof(vm.name), "web1");
        settings_complete(&vm.settings, 0);
        snprintf(vm.refusal, sizeof(vm.refusal), "cannot read /srv/caf\xc3");
        obj = control_vm_json(&vm, NULL, NULL);
        assert_non_null(obj);
        assert_string_equal(json_string_value(json_object_get(obj, "refusal")),
                            "cannot read /srv/caf?");
        json_decref(obj);
}

static void vm_json_reports_unknowns_as_null(void **state)
{
        struct vm vm = {.state = VM_OFF};
        json_t *obj;

        snprintf(vm.name, sizeof(vm.name), "web1");
        settings_complete(&vm.settings, 0);
        obj = control_vm_json(&vm, NULL, NULL);
        assert_non_null(obj);
        assert_string_equal(json_string_value(json_object_get(obj, "state")), "off");
        assert_true(json_is_null(json_object_get(obj, "demand_bytes")));
        assert_true(json_is_null(json_object_get(obj, "pressure_percent")));
        assert_string_equal(json_string_value(json_object_get(obj, "status")), "none");
        json_decref(obj);
        vm.state = VM_RUNNING;
        vm.obs = (struct vm_observation){
            .alive = true, .assigned_bytes = GIB, .demand_known = true, .demand_bytes = GIB / 2};
        obj = control_vm_json(&vm, NULL, NULL);
        assert_true(json_integer_value(json_object_get(obj, "demand_bytes")) ==
                    (json_int_t)GIB / 2);
        assert_true(json_real_value(json_object_get(obj, "pressure_percent")) == 50.0);
        assert_true(json_integer_value(json_object_get(obj, "lent_bytes")) == 0);
        json_decref(obj);
}

/*
 * A VM that holds no memory has status "none", whatever its last observation said;
 * "unknown" is kept for a VM that holds memory and has no demand known yet.
 */
static void vm_json_status_none_while_holding_no_memory(void **state)
{
        static const enum vm_state holds_none[] = {VM_OFF, VM_CRASHED, VM_STARTING};
        struct vm vm;
        json_t *obj;

        for (size_t i = 0; i < sizeof(holds_none) / sizeof(holds_none[0]); i++) {
                vm = (struct vm){.state = holds_none[i]};
                snprintf(vm.name, sizeof(vm.name), "web1");
                settings_complete(&vm.settings, 0);
                /* what it last showed before it stopped holding memory */
                vm.obs = (struct vm_observation){
                    .assigned_bytes = GIB, .demand_known = true, .demand_bytes = GIB / 2};
                obj = control_vm_json(&vm, NULL, NULL);
                assert_non_null(obj);
                assert_string_equal(json_string_value(json_object_get(obj, "status")), "none");
                json_decref(obj);
        }
        vm.state = VM_RUNNING;
        vm.obs = (struct vm_observation){.alive = true, .assigned_bytes = GIB};
        obj = control_vm_json(&vm, NULL, NULL);
        assert_string_equal(json_string_value(json_object_get(obj, "status")), "unknown");
        json_decref(obj);
        vm.obs.demand_known = true;
        vm.obs.demand_bytes = GIB / 2;
        obj = control_vm_json(&vm, NULL, NULL);
        assert_string_equal(json_string_value(json_object_get(obj, "status")), "ok");
        json_decref(obj);
        assert_string_equal(vm_status_name(VM_STATUS_NONE), "none");
        assert_string_equal(vm_status_name(VM_STATUS_UNKNOWN), "unknown");
}

/* lent_bytes: the loan in the target while the VM holds memory, 0 once it holds none. */
static void vm_json_carries_the_loan(void **state)
{
        struct vm vm = {.state = VM_RUNNING, .target_bytes = GIB, .lent_bytes = 256 * MIB};
        json_t *obj;

        snprintf(vm.name, sizeof(vm.name), "web1");
        settings_complete(&vm.settings, 0);
        vm.obs = (struct vm_observation){.alive = true, .assigned_bytes = GIB};
        obj = control_vm_json(&vm, NULL, NULL);
        assert_non_null(obj);
        assert_true(json_integer_value(json_object_get(obj, "lent_bytes")) ==
                    (json_int_t)(256 * MIB));
        json_decref(obj);
        vm.state = VM_OFF;
        obj = control_vm_json(&vm, NULL, NULL);
        assert_true(json_is_integer(json_object_get(obj, "lent_bytes")) &&
                    json_integer_value(json_object_get(obj, "lent_bytes")) == 0);
        json_decref(obj);
}

static void settings_merge_copies_only_the_mask(void **state)
{
        struct vm_settings a, b;

        settings_complete(&a, 0);
        b = a;
        b.weight = 1;
        b.buffer_percent = 99;
        b.maximum_bytes = 8 * GIB;
        settings_merge(&a, &b, SETTINGS_WEIGHT | SETTINGS_MAXIMUM);
        assert_int_equal(a.weight, 1);
        assert_int_equal(a.buffer_percent, SETTINGS_BUFFER_DEFAULT);
        assert_true(a.maximum_bytes == 8 * GIB);
}

/* Every row of settings_table goes out and comes back under its JSON name. */
static void settings_json_round_trips_every_row(void **state)
{
        struct vm_settings s, back = {0};
        unsigned given = 0;
        char err[CONTROL_ERROR_MAX];

        settings_complete(&s, 0);
        for (size_t i = 0; i < SETTINGS_N; i++) {
                const struct setting_desc *d = &settings_table[i];
                json_t *one = control_settings_json(&s, d->bit);

                assert_int_equal(json_object_size(one), 1);
                assert_non_null(json_object_get(one, d->json));
                json_decref(one);
        }
        settings_set(&s, settings_find("weight"), 1234);
        json_t *all = control_settings_json(&s, SETTINGS_ALL);
        assert_int_equal(json_object_size(all), SETTINGS_N);
        assert_int_equal(control_settings_parse(all, &back, &given, err, sizeof(err)), 0);
        assert_int_equal(given, SETTINGS_ALL);
        assert_int_equal(settings_diff(&s, &back), 0);
        json_decref(all);
}

/* A value the field cannot hold is refused here; its own range is settings_check()'s. */
static void settings_json_checks_the_type_only(void **state)
{
        struct vm_settings s = {0};
        unsigned given = 0;
        char err[CONTROL_ERROR_MAX];

        for (size_t i = 0; i < SETTINGS_N; i++) {
                const struct setting_desc *d = &settings_table[i];
                json_t *wrong = d->type == SETTING_SWITCH ? json_pack("{s:i}", d->json, 1)
                                                          : json_pack("{s:b}", d->json, 1);
                json_t *negative = json_pack("{s:i}", d->json, -1);

                assert_int_equal(control_settings_parse(wrong, &s, &given, err, sizeof(err)),
                                 -EINVAL);
                assert_non_null(strstr(err, d->json));
                if (d->type != SETTING_SWITCH) {
                        assert_int_equal(
                            control_settings_parse(negative, &s, &given, err, sizeof(err)),
                            -EINVAL);
                }
                json_decref(wrong);
                json_decref(negative);
        }
        json_t *big = json_pack("{s:I}", "weight", (json_int_t)UINT32_MAX + 1);
        assert_int_equal(control_settings_parse(big, &s, &given, err, sizeof(err)), -EINVAL);
        json_decref(big);
        json_t *out_of_range = json_pack("{s:i}", "buffer_percent", 4); /* a type fit */
        assert_int_equal(control_settings_parse(out_of_range, &s, &given, err, sizeof(err)), 0);
        assert_int_equal(s.buffer_percent, 4);
        json_decref(out_of_range);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(requests_parse),
            cmocka_unit_test(admit_takes_an_incoming_size),
            cmocka_unit_test(set_takes_autostart),
            cmocka_unit_test(set_takes_a_reset),
            cmocka_unit_test(requests_refuse_bad_envelopes),
            cmocka_unit_test(requests_refuse_bad_fields),
            cmocka_unit_test(requests_have_a_size_limit),
            cmocka_unit_test(requests_limit_backend_keys),
            cmocka_unit_test(requests_round_trip),
            cmocka_unit_test(replies_parse),
            cmocka_unit_test(error_replies_are_valid_utf8),
            cmocka_unit_test(vm_json_reports_unknowns_as_null),
            cmocka_unit_test(vm_json_status_none_while_holding_no_memory),
            cmocka_unit_test(vm_json_carries_the_loan),
            cmocka_unit_test(vm_json_takes_a_cut_refusal),
            cmocka_unit_test(settings_merge_copies_only_the_mask),
            cmocka_unit_test(settings_json_round_trips_every_row),
            cmocka_unit_test(settings_json_checks_the_type_only),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
