/*
 * control: encoding and checking of the control protocol's JSON lines,
 * shared by dynmemd and the dynmem CLI. See control.h and
 * docs/control-protocol.md.
 */
#include "control.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent_wire.h"
#include "units.h"

static const struct control_command_info commands[CONTROL_N_COMMANDS] = {
    [CONTROL_LIST] = {"list", false, false, 0},
    [CONTROL_SHOW] = {"show", false, true, 0},
    [CONTROL_STATUS] = {"status", false, false, 0},
    [CONTROL_START] = {"start", true, true, 0},
    [CONTROL_STOP] = {"stop", true, true, CONTROL_FIELD_FORCE},
    [CONTROL_SET] = {"set", true, true,
                     CONTROL_FIELD_SETTINGS | CONTROL_FIELD_AUTOSTART | CONTROL_FIELD_RESET},
    [CONTROL_CREATE] = {"create", true, true,
                        CONTROL_FIELD_SETTINGS | CONTROL_FIELD_BACKEND | CONTROL_FIELD_AUTOSTART},
    [CONTROL_DELETE] = {"delete", true, true, 0},
    [CONTROL_COUNTERS] = {"counters", false, false, CONTROL_FIELD_NAME},
    [CONTROL_EVENTS] = {"events", false, false, CONTROL_FIELD_SINCE},
    [CONTROL_ENABLE] = {"enable", true, true, CONTROL_FIELD_SETTINGS},
    [CONTROL_DISABLE] = {"disable", true, true, 0},
    [CONTROL_ADMIT] = {"admit", true, true, CONTROL_FIELD_SETTINGS | CONTROL_FIELD_INCOMING},
    [CONTROL_CARRY] = {"carry", true, true, 0},
};

const struct control_command_info *control_command_info(enum control_command c)
{
        return (unsigned)c < CONTROL_N_COMMANDS ? &commands[c] : NULL;
}

int control_command_parse(const char *name, enum control_command *ret)
{
        for (unsigned i = 0; i < CONTROL_N_COMMANDS; i++) {
                if (strcmp(commands[i].name, name) == 0) {
                        *ret = (enum control_command)i;
                        return 0;
                }
        }
        return -EOPNOTSUPP;
}

/* ---- settings ---- */

/* The settings' JSON members and types come from settings_table (lib/settings). */
json_t *control_settings_json(const struct vm_settings *s, unsigned mask)
{
        json_t *obj = json_object();

        for (size_t i = 0; obj && i < SETTINGS_N; i++) {
                const struct setting_desc *d = &settings_table[i];
                uint64_t v = settings_get(s, d);
                if (!(mask & d->bit))
                        continue;
                json_t *value =
                    d->type == SETTING_SWITCH ? json_boolean(v) : json_integer((json_int_t)v);
                if (json_object_set_new(obj, d->json, value) < 0) {
                        json_decref(obj);
                        return NULL;
                }
        }
        return obj;
}

/*
 * Only the type's range is checked here; the settings' own ranges are
 * settings_check()'s, so that every entry point reports them alike.
 */
static int setting_store(const struct setting_desc *d, const json_t *v, struct vm_settings *s,
                         char *err, size_t errlen)
{
        if (d->type == SETTING_SWITCH) {
                if (!json_is_boolean(v)) {
                        snprintf(err, errlen, "%s: expected true or false", d->json);
                        return -EINVAL;
                }
                settings_set(s, d, json_is_true(v));
                return 0;
        }
        json_int_t x = json_is_integer(v) ? json_integer_value(v) : -1;
        if (x < 0 || (uint64_t)x > settings_type_max(d)) {
                snprintf(err, errlen, "%s: expected a whole number from 0 to %llu", d->json,
                         (unsigned long long)settings_type_max(d));
                return -EINVAL;
        }
        settings_set(s, d, (uint64_t)x);
        return 0;
}

int control_settings_parse(const json_t *obj, struct vm_settings *s, unsigned *ret_given, char *err,
                           size_t errlen)
{
        struct vm_settings out = *s;
        unsigned given = 0;
        const char *key;
        json_t *v;

        if (!json_is_object(obj)) {
                snprintf(err, errlen, "settings: expected an object");
                return -EINVAL;
        }
        json_object_foreach((json_t *)obj, key, v)
        {
                const struct setting_desc *d = settings_find_json(key);
                if (!d) {
                        snprintf(err, errlen, "settings: unknown setting \"%.64s\"", key);
                        return -EINVAL;
                }
                int r = setting_store(d, v, &out, err, errlen);
                if (r < 0)
                        return r;
                given |= d->bit;
        }
        *s = out;
        *ret_given = given;
        return 0;
}

/* ---- requests ---- */

static const char *const base_fields[] = {"version", "command", "name"};

static const struct {
        const char *key;
        unsigned field;
} optional_fields[] = {
    {"force", CONTROL_FIELD_FORCE},
    {"settings", CONTROL_FIELD_SETTINGS},
    {"backend", CONTROL_FIELD_BACKEND},
    {"autostart", CONTROL_FIELD_AUTOSTART},
    {"name", CONTROL_FIELD_NAME},
    {"since", CONTROL_FIELD_SINCE},
    {"incoming_bytes", CONTROL_FIELD_INCOMING},
    {"reset", CONTROL_FIELD_RESET},
};
#define N_OPTIONAL_FIELDS (sizeof(optional_fields) / sizeof(optional_fields[0]))

/* Every member of the request must be one the command takes. */
static int check_members(const json_t *obj, const struct control_command_info *info, char *err,
                         size_t errlen)
{
        const char *key;
        json_t *v;

        json_object_foreach((json_t *)obj, key, v)
        {
                bool known = false;
                for (size_t i = 0; i < sizeof(base_fields) / sizeof(base_fields[0]) && !known; i++)
                        known = strcmp(key, base_fields[i]) == 0 &&
                                (strcmp(key, "name") != 0 || info->needs_name);
                for (size_t i = 0; i < N_OPTIONAL_FIELDS && !known; i++)
                        known = strcmp(key, optional_fields[i].key) == 0 &&
                                (info->fields & optional_fields[i].field);
                if (!known) {
                        snprintf(err, errlen, "unknown field \"%.64s\" in a %s request", key,
                                 info->name);
                        return -EINVAL;
                }
        }
        return 0;
}

static int parse_header(const json_t *obj, struct control_request *req, char *err, size_t errlen)
{
        const json_t *version = json_object_get(obj, "version");
        const json_t *command = json_object_get(obj, "command");

        if (!json_is_integer(version)) {
                snprintf(err, errlen, "request without a \"version\" number");
                return -EPROTO;
        }
        if (json_integer_value(version) != CONTROL_VERSION) {
                snprintf(err, errlen, "unsupported protocol version %lld (dynmemd speaks %d)",
                         (long long)json_integer_value(version), CONTROL_VERSION);
                return -EPROTO;
        }
        if (!json_is_string(command)) {
                snprintf(err, errlen, "request without a \"command\" string");
                return -EINVAL;
        }
        if (control_command_parse(json_string_value(command), &req->command) < 0) {
                snprintf(err, errlen, "unknown command \"%.64s\"", json_string_value(command));
                return -EOPNOTSUPP;
        }
        return 0;
}

static int parse_name(const json_t *obj, struct control_request *req, char *err, size_t errlen)
{
        const json_t *name = json_object_get(obj, "name");

        if (!json_is_string(name)) {
                snprintf(err, errlen, "%s: a VM \"name\" string is required",
                         commands[req->command].name);
                return -EINVAL;
        }
        if (!config_name_valid(json_string_value(name))) {
                snprintf(err, errlen,
                         "invalid VM name \"%.64s\" (1..%d of letters, digits, '_', '.', '-', "
                         "not starting with '.' or '-')",
                         json_string_value(name), CONFIG_NAME_MAX - 1);
                return -EINVAL;
        }
        snprintf(req->name, sizeof(req->name), "%s", json_string_value(name));
        return 0;
}

static bool key_name_valid(const char *key)
{
        size_t n = strlen(key);

        if (n == 0 || n >= CONTROL_KEY_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((key[i] >= 'a' && key[i] <= 'z') || (key[i] >= '0' && key[i] <= '9') ||
                      key[i] == '_'))
                        return false;
        return true;
}

static int add_key(struct config_kv **keys, size_t *n, const char *key, const char *value)
{
        struct config_kv *grown = realloc(*keys, (*n + 1) * sizeof(*grown));

        if (!grown)
                return -ENOMEM;
        *keys = grown;
        grown[*n] = (struct config_kv){.key = strdup(key), .value = strdup(value)};
        if (!grown[*n].key || !grown[*n].value) {
                free(grown[*n].key);
                free(grown[*n].value);
                return -ENOMEM;
        }
        (*n)++;
        return 0;
}

int control_keys_parse(const json_t *obj, struct config_kv **keys, size_t *n_keys, char *err,
                       size_t errlen)
{
        const char *key;
        json_t *v;

        if (!json_is_object(obj) || json_object_size(obj) > CONTROL_KEYS_MAX) {
                snprintf(err, errlen, "backend: expected an object of at most %d keys",
                         CONTROL_KEYS_MAX);
                return -EINVAL;
        }
        json_object_foreach((json_t *)obj, key, v)
        {
                if (!key_name_valid(key) || !json_is_string(v) || json_string_length(v) == 0 ||
                    json_string_length(v) >= CONFIG_VALUE_MAX ||
                    strlen(json_string_value(v)) != json_string_length(v)) {
                        snprintf(err, errlen,
                                 "backend: \"%.64s\" must be a key of [a-z0-9_] with a "
                                 "non-empty string value under %d bytes",
                                 key, CONFIG_VALUE_MAX);
                        return -EINVAL;
                }
                if (add_key(keys, n_keys, key, json_string_value(v)) < 0) {
                        snprintf(err, errlen, "out of memory");
                        return -ENOMEM;
                }
        }
        return 0;
}

json_t *control_keys_json(const struct config_kv *keys, size_t n)
{
        json_t *obj = json_object();

        for (size_t i = 0; obj && i < n; i++) {
                if (json_object_set_new(obj, keys[i].key, json_string(keys[i].value)) < 0) {
                        json_decref(obj);
                        return NULL;
                }
        }
        return obj;
}

void control_keys_free(struct config_kv *keys, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                free(keys[i].key);
                free(keys[i].value);
        }
        free(keys);
}

static int parse_bool_field(const json_t *obj, const char *key, bool *ret, char *err, size_t errlen)
{
        const json_t *v = json_object_get(obj, key);

        if (!v)
                return 0;
        if (!json_is_boolean(v)) {
                snprintf(err, errlen, "%s: expected true or false", key);
                return -EINVAL;
        }
        *ret = json_is_true(v);
        return 0;
}

/* A whole number in [min, max] under key, if there. */
static int parse_uint(const json_t *obj, const char *key, uint64_t min, uint64_t max, uint64_t *ret,
                      char *err, size_t errlen)
{
        const json_t *v = json_object_get(obj, key);

        if (!v)
                return 0;
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            (uint64_t)json_integer_value(v) < min || (uint64_t)json_integer_value(v) > max) {
                snprintf(err, errlen, "%s: expected a whole number from %llu to %llu", key,
                         (unsigned long long)min, (unsigned long long)max);
                return -EINVAL;
        }
        *ret = (uint64_t)json_integer_value(v);
        return 0;
}

int control_reset_word(const char *word, unsigned *reset, bool *reset_autostart)
{
        const struct setting_desc *d = settings_find(word);

        if (!d)
                d = settings_find_json(word);
        if (d)
                *reset |= d->bit;
        else if (strcmp(word, "autostart") == 0)
                *reset_autostart = true;
        else if (strcmp(word, "all") == 0)
                *reset |= SETTINGS_ALL, *reset_autostart = true;
        else
                return -EINVAL;
        return 0;
}

/* "reset": a non-empty array of settings (JSON names), "autostart" or "all". */
static int parse_reset(const json_t *obj, struct control_request *req, char *err, size_t errlen)
{
        const json_t *reset = json_object_get(obj, "reset"), *v;
        size_t i;

        if (!reset)
                return 0;
        if (!json_is_array(reset) || json_array_size(reset) == 0) {
                snprintf(err, errlen, "reset: expected a non-empty array of setting names");
                return -EINVAL;
        }
        json_array_foreach(reset, i, v)
        {
                const char *word = json_string_value(v);
                if (!word || (!settings_find_json(word) && strcmp(word, "autostart") != 0 &&
                              strcmp(word, "all") != 0)) {
                        snprintf(err, errlen,
                                 "reset: \"%.64s\" is not a setting, \"autostart\" or \"all\"",
                                 word ? word : "(not a string)");
                        return -EINVAL;
                }
                control_reset_word(word, &req->reset, &req->reset_autostart);
        }
        if (req->given || req->autostart_given) {
                snprintf(err, errlen,
                         "%s: set: reset and changes in one request; make them one after the "
                         "other",
                         req->name);
                return -EINVAL;
        }
        return 0;
}

static int parse_body(const json_t *obj, struct control_request *req, char *err, size_t errlen)
{
        const struct control_command_info *info = &commands[req->command];
        const json_t *settings = json_object_get(obj, "settings");
        const json_t *backend = json_object_get(obj, "backend");
        int r;

        if ((r = check_members(obj, info, err, errlen)) < 0)
                return r;
        if ((info->needs_name || json_object_get(obj, "name")) &&
            (r = parse_name(obj, req, err, errlen)) < 0)
                return r;
        if ((r = parse_uint(obj, "since", 0, INT64_MAX, &req->since, err, errlen)) < 0 ||
            (r = parse_uint(obj, "incoming_bytes", 1, SETTINGS_SIZE_MAX, &req->incoming_bytes, err,
                            errlen)) < 0)
                return r;
        if ((r = parse_bool_field(obj, "force", &req->force, err, errlen)) < 0 ||
            (r = parse_bool_field(obj, "autostart", &req->autostart, err, errlen)) < 0)
                return r;
        req->autostart_given = json_object_get(obj, "autostart") != NULL;
        if (settings &&
            (r = control_settings_parse(settings, &req->settings, &req->given, err, errlen)) < 0)
                return r;
        if ((r = parse_reset(obj, req, err, errlen)) < 0)
                return r;
        if (req->command == CONTROL_SET && req->given == 0 && !req->autostart_given &&
            req->reset == 0 && !req->reset_autostart) {
                snprintf(err, errlen, "%s: set: nothing to change", req->name);
                return -EINVAL;
        }
        if (backend && (r = control_keys_parse(backend, &req->keys, &req->n_keys, err, errlen)) < 0)
                return r;
        return 0;
}

int control_request_parse(const char *line, size_t len, struct control_request *ret, char *err,
                          size_t errlen)
{
        struct control_request req = {0};
        json_error_t jerr;
        json_t *obj;
        int r;

        if (len > CONTROL_REQUEST_MAX) {
                snprintf(err, errlen, "request longer than %u bytes", CONTROL_REQUEST_MAX);
                return -EMSGSIZE;
        }
        obj = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!obj) {
                snprintf(err, errlen, "malformed request: %s at column %d", jerr.text, jerr.column);
                return -EINVAL;
        }
        if (!json_is_object(obj)) {
                json_decref(obj);
                snprintf(err, errlen, "malformed request: expected a JSON object");
                return -EINVAL;
        }
        r = parse_header(obj, &req, err, errlen);
        if (r == 0)
                r = parse_body(obj, &req, err, errlen);
        json_decref(obj);
        if (r < 0) {
                control_request_free(&req);
                return r;
        }
        *ret = req;
        return 0;
}

void control_request_free(struct control_request *r)
{
        if (!r)
                return;
        control_keys_free(r->keys, r->n_keys);
        r->keys = NULL;
        r->n_keys = 0;
}

/* The reset's words: ["all"], or the settings' JSON names and "autostart". */
static json_t *reset_json(const struct control_request *r)
{
        json_t *a = json_array();
        bool all = r->reset == SETTINGS_ALL && r->reset_autostart;
        int bad = !a;

        if (!bad && all)
                bad |= json_array_append_new(a, json_string("all"));
        for (size_t i = 0; !bad && !all && i < SETTINGS_N; i++)
                if (r->reset & settings_table[i].bit)
                        bad |= json_array_append_new(a, json_string(settings_table[i].json));
        if (!bad && !all && r->reset_autostart)
                bad |= json_array_append_new(a, json_string("autostart"));
        if (bad) {
                json_decref(a);
                return NULL;
        }
        return a;
}

static json_t *request_json(const struct control_request *r)
{
        const struct control_command_info *info = control_command_info(r->command);
        json_t *obj =
            info ? json_pack("{s:i, s:s}", "version", CONTROL_VERSION, "command", info->name)
                 : NULL;
        int bad = 0;

        if (!obj)
                return NULL;
        if (info->needs_name || ((info->fields & CONTROL_FIELD_NAME) && r->name[0]))
                bad |= json_object_set_new(obj, "name", json_string(r->name));
        if ((info->fields & CONTROL_FIELD_SINCE) && r->since)
                bad |= json_object_set_new(obj, "since", json_integer((json_int_t)r->since));
        if ((info->fields & CONTROL_FIELD_FORCE) && r->force)
                bad |= json_object_set_new(obj, "force", json_true());
        if ((info->fields & CONTROL_FIELD_SETTINGS) && r->given)
                bad |= json_object_set_new(obj, "settings",
                                           control_settings_json(&r->settings, r->given));
        if ((info->fields & CONTROL_FIELD_INCOMING) && r->incoming_bytes)
                bad |= json_object_set_new(obj, "incoming_bytes",
                                           json_integer((json_int_t)r->incoming_bytes));
        if ((info->fields & CONTROL_FIELD_AUTOSTART) && (r->autostart || r->autostart_given))
                bad |= json_object_set_new(obj, "autostart", json_boolean(r->autostart));
        if ((info->fields & CONTROL_FIELD_RESET) && (r->reset || r->reset_autostart))
                bad |= json_object_set_new(obj, "reset", reset_json(r));
        if ((info->fields & CONTROL_FIELD_BACKEND) && r->n_keys)
                bad |= json_object_set_new(obj, "backend", control_keys_json(r->keys, r->n_keys));
        if (bad) {
                json_decref(obj);
                return NULL;
        }
        return obj;
}

char *control_request_format(const struct control_request *r)
{
        json_t *obj = request_json(r);
        char *line = obj ? json_dumps(obj, CONTROL_JSON_FLAGS) : NULL;

        json_decref(obj);
        return line;
}

/* ---- replies ---- */

static json_t *nullable_size(bool known, uint64_t bytes)
{
        return known ? json_integer((json_int_t)bytes) : json_null();
}

static json_t *nullable_string(const char *s)
{
        return s && s[0] ? json_string(s) : json_null();
}

/* The backend's choices as [{"name", "value", "why"}], or null when it made none. */
static json_t *choices_json(const struct backend_vm_description *d)
{
        json_t *list;

        if (d->n_choices == 0)
                return json_null();
        if (!(list = json_array()))
                return NULL;
        for (unsigned i = 0; i < d->n_choices && i < BACKEND_CHOICES_MAX; i++) {
                const struct backend_vm_choice *c = &d->choices[i];
                if (json_array_append_new(list, json_pack("{s:s, s:s, s:s}", "name",
                                                          c->name ? c->name : "", "value", c->value,
                                                          "why", c->why)) < 0) {
                        json_decref(list);
                        return NULL;
                }
        }
        return list;
}

/* The backend's description; what does not apply is null. */
static json_t *description_json(const char *backend_name, const struct backend_vm_description *d)
{
        char caps[128];
        bool agent = d->agent_state != NULL;

        return json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:b, s:o, s:o, s:o}", "name",
                         backend_name, "signal", nullable_string(d->signal), "agent_state",
                         nullable_string(d->agent_state), "agent_protocol_version",
                         agent && d->agent_version ? json_integer(d->agent_version) : json_null(),
                         "agent_capabilities",
                         agent && d->agent_version
                             ? json_string(agent_caps_format(d->agent_caps, caps, sizeof(caps)))
                             : json_null(),
                         "pid", d->pid > 0 ? json_integer(d->pid) : json_null(), "accelerator",
                         nullable_string(d->accelerator), "version", nullable_string(d->version),
                         "resizing", d->resizing, "machine", nullable_string(d->machine), "choices",
                         choices_json(d), "offers", nullable_string(d->offers));
}

json_t *control_vm_json(const struct vm *vm, const char *backend_name,
                        const struct backend_vm_description *desc)
{
        bool holds = vm_holds_memory(vm);
        double pressure = vm_pressure_percent(vm);
        json_t *obj = json_object();
        json_t *settings = control_settings_json(&vm->settings, ~0u);
        int bad = !obj || !settings;
        char refusal[sizeof(vm->refusal)];

        snprintf(refusal, sizeof(refusal), "%s", vm->refusal);
        control_text_scrub(refusal); /* backends' messages, cut to size */

        bad = bad || json_object_set_new(obj, "name", json_string(vm->name)) < 0;
        bad =
            bad || json_object_set_new(
                       obj, "state",
                       json_string(vm_state_name(vm->start_pending ? VM_STARTING : vm->state))) < 0;
        bad = bad || json_object_update(obj, settings) < 0;
        bad = bad ||
              json_object_set_new(obj, "assigned_bytes",
                                  json_integer(holds ? (json_int_t)vm->obs.assigned_bytes : 0)) < 0;
        bad = bad || json_object_set_new(
                         obj, "demand_bytes",
                         nullable_size(holds && vm->obs.demand_known, vm->obs.demand_bytes)) < 0;
        bad = bad || json_object_set_new(obj, "guest_visible_bytes",
                                         nullable_size(holds && vm->obs.guest_visible_known,
                                                       vm->obs.guest_visible_bytes)) < 0;
        bad = bad || json_object_set_new(obj, "host_rss_bytes",
                                         nullable_size(holds && vm->obs.host_rss_bytes,
                                                       vm->obs.host_rss_bytes)) < 0;
        bad = bad || json_object_set_new(obj, "pressure_percent",
                                         pressure < 0 ? json_null()
                                                      : json_real(round(pressure * 10) / 10)) < 0;
        bad = bad ||
              json_object_set_new(obj, "status", json_string(vm_status_name(vm_status(vm)))) < 0;
        bad =
            bad || json_object_set_new(obj, "target_bytes",
                                       json_integer(holds ? (json_int_t)vm->target_bytes : 0)) < 0;
        bad = bad || json_object_set_new(obj, "lent_bytes",
                                         json_integer(holds ? (json_int_t)vm->lent_bytes : 0)) < 0;
        bad = bad ||
              json_object_set_new(obj, "reason",
                                  json_string(holds ? policy_reason_name(vm->reason) : "none")) < 0;
        bad = bad || json_object_set_new(obj, "refusal",
                                         vm->refusal[0] ? json_string(refusal) : json_null()) < 0;
        bad = bad || json_object_set_new(obj, "migration",
                                         vm_migration_name(vm->migration)
                                             ? json_string(vm_migration_name(vm->migration))
                                             : json_null()) < 0;
        bad = bad || (desc && json_object_set_new(obj, "backend",
                                                  description_json(backend_name, desc)) < 0);
        json_decref(settings);
        if (bad) {
                json_decref(obj);
                return NULL;
        }
        return obj;
}

static char *reply_line(json_t *reply)
{
        char *line = reply ? json_dumps(reply, CONTROL_JSON_FLAGS) : NULL;

        json_decref(reply);
        return line;
}

char *control_reply_ok(json_t *body)
{
        json_t *reply = json_pack("{s:i, s:b}", "version", CONTROL_VERSION, "ok", 1);

        if (reply && body && json_object_update(reply, body) < 0) {
                json_decref(reply);
                reply = NULL;
        }
        json_decref(body);
        return reply_line(reply);
}

/* The length of the valid UTF-8 sequence at s, 0 when there is none. */
static size_t utf8_sequence(const unsigned char *s)
{
        size_t n = s[0] < 0x80   ? 1
                   : s[0] < 0xc2 ? 0
                   : s[0] < 0xe0 ? 2
                   : s[0] < 0xf0 ? 3
                   : s[0] < 0xf5 ? 4
                                 : 0;
        unsigned char lo = 0x80, hi = 0xbf; /* the second byte's range */

        if (s[0] == 0xe0)
                lo = 0xa0; /* overlong */
        else if (s[0] == 0xed)
                hi = 0x9f; /* surrogates */
        else if (s[0] == 0xf0)
                lo = 0x90; /* overlong */
        else if (s[0] == 0xf4)
                hi = 0x8f; /* beyond U+10FFFF */
        for (size_t i = 1; i < n; i++)
                if (s[i] < (i == 1 ? lo : 0x80) || s[i] > (i == 1 ? hi : 0xbf))
                        return 0;
        return n;
}

void control_text_scrub(char *text)
{
        unsigned char *s = (unsigned char *)text;

        while (*s) {
                size_t n = utf8_sequence(s);
                if (n == 0)
                        *s++ = '?';
                else
                        s += n;
        }
}

char *control_reply_error(int errnum, const char *fmt, ...)
{
        char msg[CONTROL_ERROR_MAX];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        control_text_scrub(msg);
        return reply_line(json_pack("{s:i, s:b, s:s, s:i}", "version", CONTROL_VERSION, "ok", 0,
                                    "error", msg, "errno", errnum));
}

static int reply_error(const json_t *reply, char *err, size_t errlen)
{
        const json_t *msg = json_object_get(reply, "error");
        const json_t *num = json_object_get(reply, "errno");
        json_int_t e = json_is_integer(num) ? json_integer_value(num) : 0;

        bool said = json_is_string(msg) && json_string_value(msg)[0] != '\0';
        snprintf(err, errlen, "%s", said ? json_string_value(msg) : "dynmemd reported an error");
        return e > 0 && e < 4096 ? -(int)e : -EIO;
}

int control_reply_parse(const char *line, size_t len, json_t **ret_reply, char *err, size_t errlen)
{
        json_error_t jerr;
        json_t *reply;

        if (len > CONTROL_REPLY_MAX) {
                snprintf(err, errlen, "reply from dynmemd longer than %u bytes", CONTROL_REPLY_MAX);
                return -EBADMSG;
        }
        reply = json_loadb(line, len, 0, &jerr);
        if (!json_is_object(reply) || !json_is_boolean(json_object_get(reply, "ok"))) {
                json_decref(reply);
                snprintf(err, errlen, "malformed reply from dynmemd");
                return -EBADMSG;
        }
        const json_t *version = json_object_get(reply, "version");
        if (!json_is_integer(version) || json_integer_value(version) != CONTROL_VERSION) {
                snprintf(err, errlen,
                         "dynmemd speaks another protocol version (this dynmem "
                         "speaks %d)",
                         CONTROL_VERSION);
                json_decref(reply);
                return -EPROTO;
        }
        if (!json_is_true(json_object_get(reply, "ok"))) {
                int r = reply_error(reply, err, errlen);
                json_decref(reply);
                return r;
        }
        *ret_reply = reply;
        return 0;
}
