/* Run-time choice of the SIMD path. The binary is compiled for plain x86-64;
 * SIMD functions carry target attributes and are only entered when cpuid
 * (and the OS, via XGETBV, which __builtin_cpu_supports checks) allow. */
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/cpu_kernels_internal.h"

static int detect_hardware_level(void) {
#if defined(__x86_64__) || defined(__i386__)
    /* F16C straight from cpuid leaf 1 (ECX bit 29): clang's
     * __builtin_cpu_supports does not know "f16c". Its AVX register state
     * is the one the avx2 check below already requires the OS to enable. */
    unsigned eax, ebx, ecx = 0, edx;
    int f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & (1u << 29));
    __builtin_cpu_init();
    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
    if (avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        return CPU_ISA_AVX512;
    if (avx2) return CPU_ISA_AVX2;
#endif
    return CPU_ISA_PORTABLE;
}

/* AVX512-BF16 (vdpbf16ps): cpuid leaf 7 subleaf 1, EAX bit 5. */
static int detect_bf16_dot(void) {
#if defined(__x86_64__) || defined(__i386__)
    unsigned eax = 0, ebx, ecx, edx;
    return __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx) && (eax & (1u << 5));
#else
    return 0;
#endif
}

static int level_from_name(const char *name) {
    if (!name) return -1;
    if (strcmp(name, "portable") == 0) return CPU_ISA_PORTABLE;
    if (strcmp(name, "avx2") == 0) return CPU_ISA_AVX2;
    if (strcmp(name, "avx512") == 0) return CPU_ISA_AVX512;
    return -1;
}

/* -1 until first use. Relaxed atomics: every thread computes the same value,
 * so a race only repeats the detection. */
static atomic_int hardware_level = -1;
static atomic_int current_level = -1;

static int hardware(void) {
    int level = atomic_load_explicit(&hardware_level, memory_order_relaxed);
    if (level < 0) {
        level = detect_hardware_level();
        atomic_store_explicit(&hardware_level, level, memory_order_relaxed);
    }
    return level;
}

/* A request can only lower the level: asking for AVX-512 on an AVX2 machine
 * gives AVX2, never an illegal instruction. */
static int clamp_to_hardware(int requested) {
    int max = hardware();
    return requested < 0 || requested > max ? max : requested;
}

int cpu_isa_level(void) {
    int level = atomic_load_explicit(&current_level, memory_order_relaxed);
    if (level < 0) {
        level = clamp_to_hardware(level_from_name(getenv("LLMRT_CPU_ISA")));
        atomic_store_explicit(&current_level, level, memory_order_relaxed);
    }
    return level;
}

static atomic_int bf16_dot = -1;

int cpu_has_bf16_dot(void) {
    int has = atomic_load_explicit(&bf16_dot, memory_order_relaxed);
    if (has < 0) {
        has = hardware() >= CPU_ISA_AVX512 && detect_bf16_dot();
        atomic_store_explicit(&bf16_dot, has, memory_order_relaxed);
    }
    return has && cpu_isa_level() >= CPU_ISA_AVX512;
}

/* Per calling thread: the precision of the step this thread is running
 * (set by the backend before each forward pass; the pool's workers only
 * see the decision through the job the caller hands them). */
static _Thread_local int sixteen_bit_compute;

void cpu_kernels_set_16bit_compute(int on) { sixteen_bit_compute = on; }
int cpu_bf16_compute_active(void) { return sixteen_bit_compute && cpu_has_bf16_dot(); }
const char *cpu_kernels_bf16_compute(void) { return cpu_bf16_compute_active() ? "bf16" : "fp32"; }

const char *cpu_kernels_isa(void) {
    static const char *const names[] = {"portable", "avx2", "avx512"};
    return names[cpu_isa_level()];
}

void cpu_kernels_force_isa(const char *isa) {
    int level = isa ? clamp_to_hardware(level_from_name(isa))
                    : clamp_to_hardware(level_from_name(getenv("LLMRT_CPU_ISA")));
    atomic_store_explicit(&current_level, level, memory_order_relaxed);
}

/* Each thread keeps its buffers for its life: the pool's workers live as
 * long as the process, so this is one allocation per thread and slot, ever
 * (it only grows when a larger shape arrives). A caller thread that exits
 * (a server's engine thread, say) frees its buffers through the key's
 * destructor. */
enum { SCRATCH_SLOTS = 3 };
typedef struct scratch_slots {
    void *data[SCRATCH_SLOTS];
    size_t bytes[SCRATCH_SLOTS];
} scratch_slots;
static _Thread_local scratch_slots scratch;
static pthread_key_t scratch_key;
static pthread_once_t scratch_key_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *p) {
    scratch_slots *slots = p;
    for (int i = 0; i < SCRATCH_SLOTS; i++) free(slots->data[i]);
}
static void scratch_key_create(void) { pthread_key_create(&scratch_key, scratch_free); }

void *cpu_thread_buffer(int slot, size_t bytes) {
    if (slot < 0 || slot >= SCRATCH_SLOTS) return NULL;
    if (bytes <= scratch.bytes[slot]) return scratch.data[slot];
    pthread_once(&scratch_key_once, scratch_key_create);
    size_t rounded = (bytes + 63) & ~(size_t)63;
    void *fresh = aligned_alloc(64, rounded);
    if (!fresh || pthread_setspecific(scratch_key, &scratch) != 0) {
        free(fresh);
        return NULL;
    }
    free(scratch.data[slot]);
    scratch.data[slot] = fresh;
    scratch.bytes[slot] = rounded;
    return fresh;
}

float *cpu_thread_scratch(size_t bytes) { return cpu_thread_buffer(0, bytes); }
