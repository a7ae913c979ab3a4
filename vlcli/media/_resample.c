/*
 * vlcli._resample: the reference's antialiased bicubic resize of a uint8 RGB frame, computed with
 * the same float32 operations in the same order, on AVX2.
 *
 * What the reference computes (torch's separable antialiased interpolation, which torchvision
 * calls on a float32 copy of the frame): first along each row, then along each column, every
 * output value as
 *
 *     acc = t[0] * w[0];  acc = acc + t[j] * w[j]  for j = 1 .. L-1
 *
 * where L is the output's support (``size``), and whether each ``acc + t * w`` is rounded once
 * (a fused multiply-add) or twice depends on how the compiler built torch's loop: the built
 * code unrolls it by ``unroll`` and rounds the unrolled body and the remainder each its own way
 * (``body_fused``, ``rem_fused``). None of this is guessed here: the caller (vlcli.resample)
 * measures the rule and the supports and weights on the machine's own torch, and uses this
 * module only where its floats equal torch's, bit for bit, on that very geometry.
 *
 * Why it is faster: torch's kernel walks strided indices one value at a time; here both passes
 * run over contiguous rows eight floats at a time (the row pass on a transposed copy), and the
 * conversions to and from uint8 are done once, in the same sweep as the transposes.
 *
 * The build asks for -ffp-contract=off: no product and sum may be fused but the ones written
 * as fused here.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* -DVLCLI_GENERIC builds the module without the kernel, as on other CPUs (available() is False) */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(VLCLI_GENERIC)
#define VLCLI_X86 1
#include <immintrin.h>
#else
#define VLCLI_X86 0
#endif

typedef struct {
    int unroll;     /* >= 1 */
    int body_fused; /* the first unroll * floor((L-1) / unroll) sums */
    int rem_fused;  /* the rest */
} Rule;

typedef struct {
    const int32_t *first; /* first source index of each output */
    const int32_t *size;  /* its support, L */
    const float *weights; /* taps floats per output, zero after L */
    int taps;
} Axis;

#if VLCLI_X86

#define TARGET __attribute__((target("avx2,fma")))

/* dst[k] = sum over j of in[first[o] + j][k] * w[o][j], for k < ncols (a multiple of 8), the
 * rows of ``in`` ``stride`` floats apart, every sum in the reference's order. */
TARGET static void pass_row(const float *in, ptrdiff_t stride, int o, ptrdiff_t ncols,
                            const Axis *ax, Rule rule, float *dst)
{
    const int L = ax->size[o];
    const float *w = ax->weights + (ptrdiff_t)o * ax->taps;
    const float *base = in + (ptrdiff_t)ax->first[o] * stride;
    const int nb = rule.unroll * ((L - 1) / rule.unroll);
    ptrdiff_t k = 0;
    for (; k + 32 <= ncols; k += 32) {
        __m256 w0 = _mm256_set1_ps(w[0]);
        __m256 a0 = _mm256_mul_ps(_mm256_loadu_ps(base + k), w0);
        __m256 a1 = _mm256_mul_ps(_mm256_loadu_ps(base + k + 8), w0);
        __m256 a2 = _mm256_mul_ps(_mm256_loadu_ps(base + k + 16), w0);
        __m256 a3 = _mm256_mul_ps(_mm256_loadu_ps(base + k + 24), w0);
        for (int j = 1; j < L; j++) {
            const float *row = base + (ptrdiff_t)j * stride + k;
            __m256 wj = _mm256_set1_ps(w[j]);
            if (j <= nb ? rule.body_fused : rule.rem_fused) {
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(row), wj, a0);
                a1 = _mm256_fmadd_ps(_mm256_loadu_ps(row + 8), wj, a1);
                a2 = _mm256_fmadd_ps(_mm256_loadu_ps(row + 16), wj, a2);
                a3 = _mm256_fmadd_ps(_mm256_loadu_ps(row + 24), wj, a3);
            } else {
                a0 = _mm256_add_ps(a0, _mm256_mul_ps(_mm256_loadu_ps(row), wj));
                a1 = _mm256_add_ps(a1, _mm256_mul_ps(_mm256_loadu_ps(row + 8), wj));
                a2 = _mm256_add_ps(a2, _mm256_mul_ps(_mm256_loadu_ps(row + 16), wj));
                a3 = _mm256_add_ps(a3, _mm256_mul_ps(_mm256_loadu_ps(row + 24), wj));
            }
        }
        _mm256_storeu_ps(dst + k, a0);
        _mm256_storeu_ps(dst + k + 8, a1);
        _mm256_storeu_ps(dst + k + 16, a2);
        _mm256_storeu_ps(dst + k + 24, a3);
    }
    for (; k < ncols; k += 8) {
        __m256 a = _mm256_mul_ps(_mm256_loadu_ps(base + k), _mm256_set1_ps(w[0]));
        for (int j = 1; j < L; j++) {
            __m256 t = _mm256_loadu_ps(base + (ptrdiff_t)j * stride + k);
            __m256 wj = _mm256_set1_ps(w[j]);
            if (j <= nb ? rule.body_fused : rule.rem_fused)
                a = _mm256_fmadd_ps(t, wj, a);
            else
                a = _mm256_add_ps(a, _mm256_mul_ps(t, wj));
        }
        _mm256_storeu_ps(dst + k, a);
    }
}

/* Eight rows of eight floats, ``src`` rows ``ss`` apart, written as eight columns of ``dst``,
 * its rows ``ds`` apart. */
TARGET static inline void transpose8(const float *src, ptrdiff_t ss, float *dst, ptrdiff_t ds)
{
    __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + ss);
    __m256 r2 = _mm256_loadu_ps(src + 2 * ss), r3 = _mm256_loadu_ps(src + 3 * ss);
    __m256 r4 = _mm256_loadu_ps(src + 4 * ss), r5 = _mm256_loadu_ps(src + 5 * ss);
    __m256 r6 = _mm256_loadu_ps(src + 6 * ss), r7 = _mm256_loadu_ps(src + 7 * ss);
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
    __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(dst, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(dst + ds, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(dst + 2 * ds, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(dst + 3 * ds, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(dst + 4 * ds, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(dst + 5 * ds, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(dst + 6 * ds, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(dst + 7 * ds, _mm256_permute2f128_ps(u3, u7, 0x31));
}

/* One output row of floats clamped to 0..255, rounded half to even, as uint8. */
TARGET static void pack_row(const float *s, uint8_t *d, int cols)
{
    const __m256 lo = _mm256_setzero_ps(), hi = _mm256_set1_ps(255.0f);
    int k = 0;
    for (; k + 8 <= cols; k += 8) {
        __m256 v = _mm256_min_ps(_mm256_max_ps(_mm256_loadu_ps(s + k), lo), hi);
        __m256i i = _mm256_cvtps_epi32(
            _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        __m128i q = _mm_packs_epi32(_mm256_castsi256_si128(i), _mm256_extracti128_si256(i, 1));
        _mm_storel_epi64((__m128i *)(d + k), _mm_packus_epi16(q, q));
    }
    for (; k < cols; k++) {
        float v = s[k];
        v = v < 0.0f ? 0.0f : (v > 255.0f ? 255.0f : v);
        d[k] = (uint8_t)nearbyintf(v);
    }
}

static ptrdiff_t up8(ptrdiff_t n) { return (n + 7) & ~(ptrdiff_t)7; }

/* One source row's values of one colour (``pixel_stride`` bytes apart) as floats. */
TARGET static void convert_row(const uint8_t *s, ptrdiff_t pixel_stride, int w, float *dst)
{
    int x = 0;
    if (pixel_stride == 3) {
        /* eight pixels of 3 bytes: their first bytes, 0, 3, .., 21, gathered by two shuffles */
        char lo[16], hi[16];
        for (int k = 0; k < 16; k++) {
            lo[k] = (k < 8 && 3 * k < 16) ? (char)(3 * k) : (char)0x80;
            hi[k] = (k < 8 && 3 * k >= 16) ? (char)(3 * k - 16) : (char)0x80;
        }
        const __m128i mlo = _mm_loadu_si128((const __m128i *)lo);
        const __m128i mhi = _mm_loadu_si128((const __m128i *)hi);
        /* reads bytes 3x .. 3x+23: while x + 9 <= w, all lie before this colour's last byte,
         * 3(w-1), so nothing past the frame is read whichever colour s points at */
        for (; x + 9 <= w; x += 8) {
            const uint8_t *p = s + 3 * x;
            __m128i a = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)p), mlo);
            __m128i b = _mm_shuffle_epi8(_mm_loadl_epi64((const __m128i *)(p + 16)), mhi);
            __m256i v = _mm256_cvtepu8_epi32(_mm_or_si128(a, b));
            _mm256_storeu_ps(dst + x, _mm256_cvtepi32_ps(v));
        }
    } else if (pixel_stride == 1) {
        for (; x + 8 <= w; x += 8) {
            __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(s + x)));
            _mm256_storeu_ps(dst + x, _mm256_cvtepi32_ps(v));
        }
    }
    for (; x < w; x++)
        dst[x] = (float)s[x * pixel_stride];
}

/* One colour plane of ``frame`` (uint8, ``row_stride`` and ``pixel_stride`` bytes apart) as the
 * reference resizes it, into ``out`` (h_out x w_out uint8). ``work`` holds the floats between
 * the steps (vlcli.resample.workspace_floats), zeroed once by the caller. Eight source rows at a
 * time: as floats, transposed, resized along the row into eight rows of the intermediate plane;
 * then the intermediate plane along its columns. */
TARGET static void resample_plane(const uint8_t *frame, ptrdiff_t row_stride,
                                  ptrdiff_t pixel_stride, int h_in, int w_in, uint8_t *out,
                                  int h_out, int w_out, const Axis *xs, const Axis *ys,
                                  Rule rule, float *work, float *floats)
{
    const ptrdiff_t hp = up8(h_in), wip = up8(w_in), wop = up8(w_out);
    const int resize_rows = w_out != w_in;
    const ptrdiff_t w_now = resize_rows ? wop : wip; /* the intermediate plane's row stride */
    float *rows8 = work;               /* 8 x wip: eight source rows as floats */
    float *block = rows8 + 8 * wip;    /* wip x 8: the same, transposed */
    float *acc8 = block + wip * 8;     /* 8 x 8: eight outputs of eight rows */
    float *tmp = acc8 + 64;            /* hp x w_now: the plane resized along its rows */
    float *res = tmp + hp * w_now;     /* w_now: one output row, resized along its column too */

    for (ptrdiff_t y0 = 0; y0 < hp; y0 += 8) {
        const int rows = h_in - y0 < 8 ? (int)(h_in - y0) : 8;
        float *dst_rows = resize_rows ? rows8 : tmp + y0 * w_now;
        for (int r = 0; r < 8; r++) {
            float *dst = dst_rows + r * (resize_rows ? wip : w_now);
            if (r < rows)
                convert_row(frame + (y0 + r) * row_stride, pixel_stride, w_in, dst);
            else
                memset(dst, 0, sizeof(float) * w_in);
        }
        if (!resize_rows)
            continue;
        for (ptrdiff_t x0 = 0; x0 < wip; x0 += 8)
            transpose8(rows8 + x0, wip, block + x0 * 8, 8);
        for (int xo0 = 0; xo0 < w_out; xo0 += 8) {
            for (int k = 0; k < 8; k++) {
                const int xo = xo0 + k;
                if (xo >= w_out) {
                    _mm256_storeu_ps(acc8 + 8 * k, _mm256_setzero_ps());
                    continue;
                }
                const int L = xs->size[xo];
                const int nb = rule.unroll * ((L - 1) / rule.unroll);
                const float *w = xs->weights + (ptrdiff_t)xo * xs->taps;
                const float *t = block + (ptrdiff_t)xs->first[xo] * 8;
                __m256 a = _mm256_mul_ps(_mm256_loadu_ps(t), _mm256_set1_ps(w[0]));
                for (int j = 1; j < L; j++) {
                    __m256 v = _mm256_loadu_ps(t + 8 * j);
                    __m256 wj = _mm256_set1_ps(w[j]);
                    if (j <= nb ? rule.body_fused : rule.rem_fused)
                        a = _mm256_fmadd_ps(v, wj, a);
                    else
                        a = _mm256_add_ps(a, _mm256_mul_ps(v, wj));
                }
                _mm256_storeu_ps(acc8 + 8 * k, a);
            }
            transpose8(acc8, 8, tmp + y0 * w_now + xo0, w_now);
        }
    }

    /* along each column, one output row at a time */
    for (int r = 0; r < h_out; r++) {
        const float *row = tmp + (ptrdiff_t)r * w_now;
        if (h_out != h_in) {
            pass_row(tmp, w_now, r, w_now, ys, rule, res);
            row = res;
        }
        if (floats)
            memcpy(floats + (ptrdiff_t)r * w_out, row, sizeof(float) * w_out);
        pack_row(row, out + (ptrdiff_t)r * w_out, w_out);
    }
}

static int cpu_ok(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

#else /* not x86-64 with GCC or clang */

static int cpu_ok(void) { return 0; }

#endif

static PyObject *py_available(PyObject *self, PyObject *args)
{
    (void)self;
    (void)args;
    return PyBool_FromLong(cpu_ok());
}

/* resize(frame, channel_stride, row_stride, pixel_stride, h_in, w_in, channels, out, h_out, w_out,
 *        x_first, x_size, x_weights, x_taps, y_first, y_size, y_weights, y_taps,
 *        unroll, body_fused, rem_fused, work, floats)
 * Addresses are integers (tensors' data_ptr()); the caller keeps them alive and sized. The
 * output is channels planes of h_out x w_out, one after the other; ``floats``, when not 0,
 * receives the same planes as the floats before rounding (the check against torch). */
static PyObject *py_resize(PyObject *self, PyObject *args)
{
    (void)self;
    Py_ssize_t frame, channel_stride, row_stride, pixel_stride, out, xf, xn, xw, yf, yn, yw, work, floats;
    int h_in, w_in, channels, h_out, w_out, xt, yt, unroll, body, rem;
    if (!PyArg_ParseTuple(args, "nnnniiiniinnninnniiiinn", &frame, &channel_stride, &row_stride, &pixel_stride,
                          &h_in, &w_in, &channels, &out, &h_out, &w_out, &xf, &xn, &xw, &xt,
                          &yf, &yn, &yw, &yt, &unroll, &body, &rem, &work, &floats))
        return NULL;
    if (h_in < 1 || w_in < 1 || h_out < 1 || w_out < 1 || channels < 1 || unroll < 1 ||
        channel_stride < 0 || row_stride < 0 || pixel_stride < 0) {
        PyErr_SetString(PyExc_ValueError, "resize: sizes must be positive");
        return NULL;
    }
#if VLCLI_X86
    if (!cpu_ok()) {
        PyErr_SetString(PyExc_RuntimeError, "resize: this CPU has no AVX2 and FMA");
        return NULL;
    }
    Axis xs = {(const int32_t *)xf, (const int32_t *)xn, (const float *)xw, xt};
    Axis ys = {(const int32_t *)yf, (const int32_t *)yn, (const float *)yw, yt};
    Rule rule = {unroll, body, rem};
    Py_BEGIN_ALLOW_THREADS
    for (int c = 0; c < channels; c++)
        resample_plane((const uint8_t *)frame + c * channel_stride, row_stride, pixel_stride, h_in, w_in,
                       (uint8_t *)out + (ptrdiff_t)c * h_out * w_out, h_out, w_out, &xs, &ys,
                       rule, (float *)work,
                       floats ? (float *)floats + (ptrdiff_t)c * h_out * w_out : NULL);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
#else
    (void)frame; (void)channel_stride; (void)row_stride; (void)pixel_stride; (void)out; (void)xf; (void)xn; (void)xw;
    (void)yf; (void)yn; (void)yw; (void)work; (void)floats; (void)xt; (void)yt; (void)body; (void)rem;
    PyErr_SetString(PyExc_RuntimeError, "resize: built without the x86-64 kernel");
    return NULL;
#endif
}

static PyMethodDef methods[] = {
    {"available", py_available, METH_NOARGS, "Whether this CPU runs the kernel (AVX2 and FMA)."},
    {"resize", py_resize, METH_VARARGS, "Resize the colour planes of a uint8 frame."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "vlcli._resample",
    "The reference's antialiased bicubic resize, same floats, vectorised.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__resample(void) { return PyModule_Create(&module); }
