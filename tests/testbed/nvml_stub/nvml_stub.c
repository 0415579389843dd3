/*
 * A stand-in libnvidia-ml.so.1 for machines without an NVIDIA driver.
 *
 * It implements the NVML entry points Corral calls, with fake devices read at init from the JSON
 * file named by CORRAL_NVML_STUB_CONFIG:
 *
 *   {"driver_version": "550.54.15",
 *    "devices": [{"name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-...", "memory_total": 85899345920,
 *                 "memory_used": 1073741824, "utilization_gpu": 37, "utilization_memory": 12,
 *                 "temperature": 41, "power_usage_mw": 123000, "power_limit_mw": 700000,
 *                 "fan_speed": 30, "processes": [{"pid": 4242, "used_memory": 1073741824}]}]}
 *
 * A numeric field left out of a device answers NVML_ERROR_NOT_SUPPORTED, as a real device does for
 * a sensor it lacks. With no config file, init answers NVML_ERROR_DRIVER_NOT_LOADED.
 *
 * The file is read again at each nvmlDeviceGetCount_v2 (once per sample), so a test can change the
 * readings (a GPU's power draw, say) between two samples of one NVML session.
 *
 * Measured processes: an entry of `processes` may name an environment entry instead of a pid,
 *
 *   {"environ": "LLAMA_ARG_ALIAS=a", "comm": "llama-server", "used_memory": 1073741824}
 *
 * It stands for every live process whose /proc/PID/environ holds exactly that KEY=VALUE entry (and,
 * if "comm" is given, whose /proc/PID/comm is that name: a container's healthcheck runs with the
 * container's environment too). Each is listed with its real pid, and the device's memory_used grows
 * by used_memory for each, on top of the file's memory_used (everything else on the GPU). A process
 * that exits frees its memory at the next sample, as with the driver. Used memory is capped at the
 * total, as a real GPU cannot hold more.
 *
 * Cost: when the file has environ entries, each nvmlDeviceGetCount_v2 scans /proc once: one open and
 * one read (at most ENVIRON_MAX bytes) of /proc/PID/environ per process the caller may read: about
 * 1.4 us per process, 0.13 ms per sample with 92 processes on a 2-core test VM, against 4 us without
 * environ entries (then nothing is scanned). A sampler at 1 Hz spends about 0.01% of a core on it.
 * An entry past the first ENVIRON_MAX bytes of an environment is not seen. Like the rest of the stub
 * it keeps its state in globals: one thread at a time (corral-core's sampler) may call it.
 */
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef int nvmlReturn_t;
enum {
    NVML_SUCCESS = 0, NVML_ERROR_UNINITIALIZED = 1, NVML_ERROR_INVALID_ARGUMENT = 2,
    NVML_ERROR_NOT_SUPPORTED = 3, NVML_ERROR_INSUFFICIENT_SIZE = 7, NVML_ERROR_DRIVER_NOT_LOADED = 9,
    NVML_ERROR_UNKNOWN = 999
};

typedef struct { unsigned long long total, free, used; } nvmlMemory_t;
typedef struct { unsigned int version; unsigned long long total, reserved, free, used; } nvmlMemory_v2_t;
typedef struct { unsigned int gpu, memory; } nvmlUtilization_t;
typedef struct { unsigned int pid; unsigned long long usedGpuMemory; unsigned int gpuInstanceId, computeInstanceId; } nvmlProcessInfo_t;

/* ---- a minimal JSON reader: enough for the config above ---- */
typedef enum { J_NULL, J_NUM, J_STR, J_ARR, J_OBJ, J_BOOL } jtype;
typedef struct jv { jtype type; double num; char *str; int n; char **keys; struct jv *items; } jv;

static const char *jp;
static int jparse(jv *out);

static void jskip(void) { while (*jp && isspace((unsigned char)*jp)) jp++; }

static char *jstring(void) {
    if (*jp != '"') return NULL;
    jp++;
    size_t cap = 64, len = 0;
    char *s = malloc(cap);
    while (*jp && *jp != '"') {
        char c = *jp++;
        if (c == '\\' && *jp) {
            c = *jp++;
            if (c == 'n') c = '\n'; else if (c == 't') c = '\t';
            else if (c == 'u') { jp += 4; c = '?'; } /* non-ASCII escapes are not needed here */
        }
        if (len + 2 > cap) s = realloc(s, cap *= 2);
        s[len++] = c;
    }
    if (*jp != '"') { free(s); return NULL; }
    jp++;
    s[len] = 0;
    return s;
}

static int jparse(jv *out) {
    memset(out, 0, sizeof *out);
    jskip();
    if (*jp == '{' || *jp == '[') {
        int is_obj = *jp == '{';
        char close = is_obj ? '}' : ']';
        out->type = is_obj ? J_OBJ : J_ARR;
        jp++;
        jskip();
        if (*jp == close) { jp++; return 0; }
        for (;;) {
            out->items = realloc(out->items, sizeof(jv) * (out->n + 1));
            out->keys = realloc(out->keys, sizeof(char *) * (out->n + 1));
            out->keys[out->n] = NULL;
            if (is_obj) {
                jskip();
                if (!(out->keys[out->n] = jstring())) return -1;
                jskip();
                if (*jp++ != ':') return -1;
            }
            if (jparse(&out->items[out->n])) return -1;
            out->n++;
            jskip();
            if (*jp == ',') { jp++; continue; }
            if (*jp == close) { jp++; return 0; }
            return -1;
        }
    }
    if (*jp == '"') { out->type = J_STR; return (out->str = jstring()) ? 0 : -1; }
    if (!strncmp(jp, "true", 4)) { out->type = J_BOOL; out->num = 1; jp += 4; return 0; }
    if (!strncmp(jp, "false", 5)) { out->type = J_BOOL; jp += 5; return 0; }
    if (!strncmp(jp, "null", 4)) { out->type = J_NULL; jp += 4; return 0; }
    char *end;
    out->num = strtod(jp, &end);
    if (end == jp) return -1;
    out->type = J_NUM;
    jp = end;
    return 0;
}

static const jv *jget(const jv *obj, const char *key) {
    if (!obj || obj->type != J_OBJ) return NULL;
    for (int i = 0; i < obj->n; i++)
        if (!strcmp(obj->keys[i], key)) return &obj->items[i];
    return NULL;
}

/* ---- the fake devices ---- */
static jv config;
static int initialised;

typedef const jv *nvmlDevice_t;

static const jv *devices(void) {
    const jv *d = jget(&config, "devices");
    return d && d->type == J_ARR ? d : NULL;
}

static char *loaded_text; /* the file's text as last parsed into `config` */

static char *read_config_text(void) {
    const char *path = getenv("CORRAL_NVML_STUB_CONFIG");
    if (!path) return NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = calloc(1, size + 1);
    size_t got = fread(text, 1, size, f);
    fclose(f);
    text[got] = 0;
    return text;
}

static nvmlReturn_t load_config(void) {
    char *text = read_config_text();
    if (!text) return NVML_ERROR_DRIVER_NOT_LOADED;
    jp = text;
    int bad = jparse(&config);
    free(loaded_text);
    loaded_text = text;
    return bad ? NVML_ERROR_UNKNOWN : NVML_SUCCESS;
}

/* Re-parse the file if its text changed since it was loaded. The previous parse is kept, not freed:
 * handles handed out before point into it (a few hundred bytes per change, in a test process). A file
 * that is gone or does not parse (caught mid-write) leaves the last good readings in place. */
static void reload_if_changed(void) {
    char *text = read_config_text();
    if (!text) return;
    if (loaded_text && !strcmp(text, loaded_text)) { free(text); return; }
    jv fresh;
    jp = text;
    if (jparse(&fresh)) { free(text); return; }
    config = fresh;
    free(loaded_text);
    loaded_text = text;
}

/* ---- measured processes: environ entries matched against /proc ---- */
#define ENVIRON_MAX 65536 /* bytes of a process's environment that are searched */
#define MAX_LIVE 256      /* matched processes kept per sample, all devices together */

typedef struct { const jv *device, *entry; unsigned int pid; } live_process;
static live_process live[MAX_LIVE];
static int live_count;

static const char *entry_string(const jv *entry, const char *key) {
    const jv *v = jget(entry, key);
    return v && v->type == J_STR ? v->str : NULL;
}

/* Read /proc/PID/NAME into buf (NUL-terminated, at most size - 1 bytes); its length, or -1. */
static ssize_t read_proc_file(const char *pid, const char *name, char *buf, size_t size) {
    char path[64];
    if (snprintf(path, sizeof path, "/proc/%s/%s", pid, name) >= (int)sizeof path) return -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    size_t len = 0;
    while (len < size - 1) {
        ssize_t got = read(fd, buf + len, size - 1 - len);
        if (got <= 0) break;
        len += (size_t)got;
    }
    close(fd);
    buf[len] = 0;
    return (ssize_t)len;
}

/* Whether the NUL-separated environment in env[0..len) holds exactly `want`. */
static int environ_has(const char *env, size_t len, const char *want) {
    for (size_t at = 0; at < len; at += strlen(env + at) + 1)
        if (!strcmp(env + at, want)) return 1;
    return 0;
}

static int has_environ_entries(void) {
    const jv *all = devices();
    for (int d = 0; all && d < all->n; d++) {
        const jv *procs = jget(&all->items[d], "processes");
        for (int i = 0; procs && procs->type == J_ARR && i < procs->n; i++)
            if (entry_string(&procs->items[i], "environ")) return 1;
    }
    return 0;
}

/* Find the live processes each environ entry stands for: one pass over /proc per sample. */
static void scan_processes(void) {
    static char env[ENVIRON_MAX];
    char comm[64];
    live_count = 0;
    if (!has_environ_entries()) return;
    DIR *proc = opendir("/proc");
    if (!proc) return;
    const jv *all = devices();
    struct dirent *de;
    while ((de = readdir(proc)) && live_count < MAX_LIVE) {
        if (!isdigit((unsigned char)de->d_name[0])) continue;
        ssize_t len = read_proc_file(de->d_name, "environ", env, sizeof env);
        if (len <= 0) continue; /* gone, a kernel thread, or not ours to read */
        int comm_read = 0;
        for (int d = 0; d < all->n && live_count < MAX_LIVE; d++) {
            const jv *procs = jget(&all->items[d], "processes");
            for (int i = 0; procs && procs->type == J_ARR && i < procs->n && live_count < MAX_LIVE; i++) {
                const jv *entry = &procs->items[i];
                const char *want = entry_string(entry, "environ"), *want_comm = entry_string(entry, "comm");
                if (!want || !environ_has(env, (size_t)len, want)) continue;
                if (want_comm) {
                    if (!comm_read) {
                        comm_read = read_proc_file(de->d_name, "comm", comm, sizeof comm) < 0 ? -1 : 1;
                        if (comm_read > 0) comm[strcspn(comm, "\n")] = 0;
                    }
                    if (comm_read < 0 || strcmp(comm, want_comm)) continue;
                }
                live[live_count++] = (live_process){&all->items[d], entry, (unsigned int)strtoul(de->d_name, NULL, 10)};
            }
        }
    }
    closedir(proc);
}

static unsigned long long live_memory(nvmlDevice_t dev) {
    unsigned long long total = 0;
    for (int i = 0; i < live_count; i++) {
        const jv *mem = jget(live[i].entry, "used_memory");
        if (live[i].device == dev && mem && mem->type == J_NUM) total += (unsigned long long)mem->num;
    }
    return total;
}

static nvmlReturn_t number(nvmlDevice_t dev, const char *key, double *value) {
    if (!initialised) return NVML_ERROR_UNINITIALIZED;
    if (!dev) return NVML_ERROR_INVALID_ARGUMENT;
    const jv *v = jget(dev, key);
    if (!v || v->type != J_NUM) return NVML_ERROR_NOT_SUPPORTED;
    *value = v->num;
    return NVML_SUCCESS;
}

static nvmlReturn_t uint_field(nvmlDevice_t dev, const char *key, unsigned int *out) {
    double v;
    nvmlReturn_t r;
    if (!out) return NVML_ERROR_INVALID_ARGUMENT;
    if ((r = number(dev, key, &v))) return r;
    *out = (unsigned int)v;
    return NVML_SUCCESS;
}

static nvmlReturn_t string_field(const char *value, char *buf, unsigned int length) {
    if (!initialised) return NVML_ERROR_UNINITIALIZED;
    if (!buf || !value) return NVML_ERROR_INVALID_ARGUMENT;
    if (strlen(value) + 1 > length) return NVML_ERROR_INSUFFICIENT_SIZE;
    strcpy(buf, value);
    return NVML_SUCCESS;
}

static const char *device_string(nvmlDevice_t dev, const char *key) {
    const jv *v = jget(dev, key);
    return v && v->type == J_STR ? v->str : NULL;
}

/* ---- the NVML entry points ---- */
nvmlReturn_t nvmlInitWithFlags(unsigned int flags) {
    (void)flags;
    if (initialised++) return NVML_SUCCESS;
    nvmlReturn_t r = load_config();
    if (r) initialised = 0;
    else scan_processes();
    return r;
}
nvmlReturn_t nvmlInit_v2(void) { return nvmlInitWithFlags(0); }
nvmlReturn_t nvmlShutdown(void) {
    if (!initialised) return NVML_ERROR_UNINITIALIZED;
    initialised--;
    return NVML_SUCCESS;
}

const char *nvmlErrorString(nvmlReturn_t result) {
    switch (result) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
    case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
    default: return "Unknown Error";
    }
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    const jv *v = jget(&config, "driver_version");
    return string_field(v && v->type == J_STR ? v->str : "0.0", version, length);
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
    if (!initialised) return NVML_ERROR_UNINITIALIZED;
    if (!count) return NVML_ERROR_INVALID_ARGUMENT;
    reload_if_changed();
    scan_processes();
    *count = devices() ? devices()->n : 0;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    if (!initialised) return NVML_ERROR_UNINITIALIZED;
    if (!device || !devices() || index >= (unsigned int)devices()->n) return NVML_ERROR_INVALID_ARGUMENT;
    *device = &devices()->items[index];
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t dev, unsigned int *index) {
    if (!initialised) return NVML_ERROR_UNINITIALIZED;
    if (!dev || !index || !devices()) return NVML_ERROR_INVALID_ARGUMENT;
    *index = (unsigned int)(dev - devices()->items);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t dev, char *name, unsigned int length) {
    return string_field(dev ? device_string(dev, "name") : NULL, name, length);
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t dev, char *uuid, unsigned int length) {
    return string_field(dev ? device_string(dev, "uuid") : NULL, uuid, length);
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t dev, nvmlMemory_t *memory) {
    double total, used;
    nvmlReturn_t r;
    if (!memory) return NVML_ERROR_INVALID_ARGUMENT;
    if ((r = number(dev, "memory_total", &total)) || (r = number(dev, "memory_used", &used))) return r;
    memory->total = (unsigned long long)total;
    memory->used = (unsigned long long)used + live_memory(dev);
    if (memory->used > memory->total) memory->used = memory->total;
    memory->free = memory->total - memory->used;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t dev, nvmlMemory_v2_t *memory) {
    nvmlMemory_t v1;
    nvmlReturn_t r;
    if (!memory) return NVML_ERROR_INVALID_ARGUMENT;
    if ((r = nvmlDeviceGetMemoryInfo(dev, &v1))) return r;
    memory->total = v1.total;
    memory->reserved = 0;
    memory->free = v1.free;
    memory->used = v1.used;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t dev, nvmlUtilization_t *utilization) {
    nvmlReturn_t r;
    if (!utilization) return NVML_ERROR_INVALID_ARGUMENT;
    if ((r = uint_field(dev, "utilization_gpu", &utilization->gpu))) return r;
    return uint_field(dev, "utilization_memory", &utilization->memory);
}

nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t dev, int sensor, unsigned int *temp) {
    (void)sensor;
    return uint_field(dev, "temperature", temp);
}

nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t dev, unsigned int *power) {
    return uint_field(dev, "power_usage_mw", power);
}

nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t dev, unsigned int *limit) {
    return uint_field(dev, "power_limit_mw", limit);
}

nvmlReturn_t nvmlDeviceGetPowerManagementLimit(nvmlDevice_t dev, unsigned int *limit) {
    return uint_field(dev, "power_limit_mw", limit);
}

nvmlReturn_t nvmlDeviceGetFanSpeed(nvmlDevice_t dev, unsigned int *speed) {
    return uint_field(dev, "fan_speed", speed);
}

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t dev, unsigned int *count, nvmlProcessInfo_t *infos) {
    if (!initialised) return NVML_ERROR_UNINITIALIZED;
    if (!dev || !count) return NVML_ERROR_INVALID_ARGUMENT;
    const jv *procs = jget(dev, "processes");
    unsigned int listed = procs && procs->type == J_ARR ? (unsigned int)procs->n : 0, n = 0;
    for (unsigned int i = 0; i < listed; i++)
        if (!entry_string(&procs->items[i], "environ")) n++; /* pid entries */
    for (int i = 0; i < live_count; i++)
        if (live[i].device == dev) n++;
    if (n == 0) { *count = 0; return NVML_SUCCESS; }
    if (!infos || *count < n) { *count = n; return NVML_ERROR_INSUFFICIENT_SIZE; }
    unsigned int at = 0;
    for (unsigned int i = 0; i < listed; i++) {
        const jv *entry = &procs->items[i];
        if (entry_string(entry, "environ")) continue;
        const jv *pid = jget(entry, "pid"), *mem = jget(entry, "used_memory");
        memset(&infos[at], 0, sizeof infos[at]);
        infos[at].pid = pid ? (unsigned int)pid->num : 0;
        infos[at].usedGpuMemory = mem ? (unsigned long long)mem->num : 0;
        infos[at].gpuInstanceId = infos[at].computeInstanceId = 0xFFFFFFFF;
        at++;
    }
    for (int i = 0; i < live_count; i++) {
        if (live[i].device != dev) continue;
        const jv *mem = jget(live[i].entry, "used_memory");
        memset(&infos[at], 0, sizeof infos[at]);
        infos[at].pid = live[i].pid;
        infos[at].usedGpuMemory = mem && mem->type == J_NUM ? (unsigned long long)mem->num : 0;
        infos[at].gpuInstanceId = infos[at].computeInstanceId = 0xFFFFFFFF;
        at++;
    }
    *count = n;
    return NVML_SUCCESS;
}

/*
 * Per-process SM utilisation, for the processes view. A device answers it only when one of its `processes`
 * entries has "sm_util" (a percent); otherwise NVML_ERROR_NOT_SUPPORTED, as on GPUs whose driver lacks it.
 * Each listed process with an sm_util gives one sample (its memUtil, encUtil and decUtil are 0).
 */
typedef struct {
    unsigned int pid; unsigned long long timeStamp; unsigned int smUtil, memUtil, encUtil, decUtil;
} nvmlProcessUtilizationSample_t;

static const jv *sm_util_of(const jv *entry) {
    const jv *v = jget(entry, "sm_util");
    return v && v->type == J_NUM ? v : NULL;
}

nvmlReturn_t nvmlDeviceGetProcessUtilization(nvmlDevice_t dev, nvmlProcessUtilizationSample_t *samples,
                                             unsigned int *count, unsigned long long lastSeenTimeStamp) {
    (void)lastSeenTimeStamp;
    if (!initialised) return NVML_ERROR_UNINITIALIZED;
    if (!dev || !count) return NVML_ERROR_INVALID_ARGUMENT;
    const jv *procs = jget(dev, "processes");
    unsigned int listed = procs && procs->type == J_ARR ? (unsigned int)procs->n : 0, n = 0, supported = 0;
    for (unsigned int i = 0; i < listed; i++) {
        if (!sm_util_of(&procs->items[i])) continue;
        supported = 1;
        if (!entry_string(&procs->items[i], "environ")) n++;
    }
    if (!supported) return NVML_ERROR_NOT_SUPPORTED;
    for (int i = 0; i < live_count; i++)
        if (live[i].device == dev && sm_util_of(live[i].entry)) n++;
    if (!samples || *count < n) { *count = n; return NVML_ERROR_INSUFFICIENT_SIZE; }
    unsigned int at = 0;
    for (unsigned int i = 0; i < listed; i++) {
        const jv *entry = &procs->items[i], *sm = sm_util_of(entry), *pid = jget(entry, "pid");
        if (!sm || entry_string(entry, "environ")) continue;
        memset(&samples[at], 0, sizeof samples[at]);
        samples[at].pid = pid ? (unsigned int)pid->num : 0;
        samples[at].timeStamp = 1;
        samples[at++].smUtil = (unsigned int)sm->num;
    }
    for (int i = 0; i < live_count; i++) {
        const jv *sm = sm_util_of(live[i].entry);
        if (live[i].device != dev || !sm) continue;
        memset(&samples[at], 0, sizeof samples[at]);
        samples[at].pid = live[i].pid;
        samples[at].timeStamp = 1;
        samples[at++].smUtil = (unsigned int)sm->num;
    }
    *count = n;
    return NVML_SUCCESS;
}
