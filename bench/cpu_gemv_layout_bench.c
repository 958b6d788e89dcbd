/* Decode GEMV layout experiment (AVX2 + F16C, f16 weights, 1 GB from
 * DRAM): eight separate weight rows read side by side, as cpu_linear's GEMV
 * reads them, against the same rows interleaved in 8-value chunks so the
 * eight rows are one stream. Both compute the same per-row FMA chains (the
 * results are compared bit for bit). Not wired into CMake; from the
 * repository root:
 *
 *   gcc -O2 -fopenmp bench/cpu_gemv_layout_bench.c -o build/cpu_gemv_layout_bench
 *   OMP_NUM_THREADS=2 build/cpu_gemv_layout_bench
 *
 * An f16 row of K = 2048 is 4 KB, one page: eight separate rows restart
 * the hardware prefetcher at every row, twice as often per byte as f32
 * rows do. */
#include <immintrin.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+1e-9*t.tv_nsec;}
#define K 2048
#define PF 1024
__attribute__((target("avx2,fma,f16c"))) static void rows8(float *y, const float *x, const uint16_t *w, int64_t N) {
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; n += 8) {
    __m256 a[8]; for (int j=0;j<8;j++) a[j]=_mm256_setzero_ps();
    const uint16_t *r = w + n*K;
    for (int k = 0; k < K; k += 8) {
      __m256 xv = _mm256_loadu_ps(x+k);
      for (int j=0;j<8;j++) {
        _mm_prefetch((const char*)(r + j*K + k) + PF, _MM_HINT_T1);
        a[j] = _mm256_fmadd_ps(xv, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(r + j*K + k))), a[j]);
      }
    }
    for (int j=0;j<8;j++){ float t[8]; _mm256_storeu_ps(t,a[j]); y[n+j]=t[0]+t[1]+t[2]+t[3]+t[4]+t[5]+t[6]+t[7]; }
  }
}
/* interleaved: for each chunk of 8 values of k, rows 0..7 one after
 * another (8 × 8 halves = 128 B), prefetched as far ahead as rows8 is */
__attribute__((target("avx2,fma,f16c"))) static void inter8(float *y, const float *x, const uint16_t *w, int64_t N) {
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; n += 8) {
    __m256 a[8]; for (int j=0;j<8;j++) a[j]=_mm256_setzero_ps();
    const uint16_t *p = w + n*K;
    for (int k = 0; k < K; k += 8) {
      __m256 xv = _mm256_loadu_ps(x+k);
      const uint16_t *q = p + (size_t)k*8;
      _mm_prefetch((const char*)q + PF * 8, _MM_HINT_T1);
      _mm_prefetch((const char*)q + PF * 8 + 64, _MM_HINT_T1);
      for (int j=0;j<8;j++) a[j] = _mm256_fmadd_ps(xv, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(q + j*8))), a[j]);
    }
    for (int j=0;j<8;j++){ float t[8]; _mm256_storeu_ps(t,a[j]); y[n+j]=t[0]+t[1]+t[2]+t[3]+t[4]+t[5]+t[6]+t[7]; }
  }
}
__attribute__((target("avx2"))) static double readbw(const float *p, size_t n) {
  double t=now(); __m256 s=_mm256_setzero_ps();
#pragma omp parallel
  { __m256 a=_mm256_setzero_ps(); 
#pragma omp for schedule(static)
    for (size_t i=0;i<n;i+=8) a=_mm256_add_ps(a,_mm256_load_ps(p+i));
    float t8[8]; _mm256_storeu_ps(t8,a); if (t8[0]==1234.5f) printf(" "); }
  (void)s; return n*4/(now()-t)/1e9;
}
int main(void){
  int64_t N = 1<<18; /* 256K rows x 2048 x 2B = 1 GB */
  uint16_t *w = aligned_alloc(64, (size_t)N*K*2), *wi = aligned_alloc(64,(size_t)N*K*2);
  for (size_t i=0;i<(size_t)N*K;i++) w[i]=0x3c00|(i&0x1ff);
  for (int64_t n=0;n<N;n+=8) for (int k=0;k<K;k+=8) for (int j=0;j<8;j++) memcpy(wi + n*K + (size_t)k*8 + j*8, w + (n+j)*K + k, 16);
  float *x = aligned_alloc(64, K*4), *y=malloc(N*4), *y2=malloc(N*4); for(int k=0;k<K;k++) x[k]=0.001f*(k%7);
  float *buf = (float*)w;
  for (int r=0;r<5;r++){
    double bw = readbw(buf, (size_t)N*K/2);
    double t=now(); rows8(y,x,w,N); double a=now()-t;
    t=now(); inter8(y2,x,wi,N); double b=now()-t;
    printf("read %.1f GB/s | rows8 %.1f GB/s | interleaved %.1f GB/s | same=%d\n", bw, N*K*2/a/1e9, N*K*2/b/1e9, memcmp(y,y2,N*4)==0);
  }
}
