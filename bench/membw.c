/*  bench/membw.c - memory read bandwidth: every core streams its slice of a 1 GiB buffer
 *  (far beyond the last-level cache) with vector loads; prints the best of 8 passes for all
 *  cores and for one core, plus the f32 FMA peak, the two ceilings bench_forward compares
 *  against.
 *
 *      build/bin/bench_membw [MiB]                                                    */
#include "bench/bench_util.h"

int main(int argc, char **argv) {
    size_t mib = argc > 1 ? (size_t)atol(argv[1]) : 1024;
    int cores = bench_cores();
    char cpu[128];
    bench_cpu_name(cpu, sizeof(cpu));
    printf("cpu: %s, %d cores\n", cpu, cores);
    double all = bench_membw(mib << 20, cores, 8);
    double one = bench_membw(mib << 20, 1, 8);
    printf("read bandwidth, %zu MiB buffer: %.1f GB/s (%d threads), %.1f GB/s (1 thread)\n",
           mib, all, cores, one);
    printf("f32 FMA peak: %.1f GFLOP/s (%d threads), %.1f GFLOP/s (1 thread)\n",
           bench_fma_peak(cores), cores, bench_fma_peak(1));
    return 0;
}
