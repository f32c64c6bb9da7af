/*  kernels/cpu/activations_isa.h - SwiGLU, sigmoid, softmax and RMSNorm bodies, included
 *  once per ISA by kernels/cpu/activations.c. Oracles: kernels/ref/activations.c and
 *  kernels/ref/rmsnorm.c. Ranges [i0, i1) of flat arrays or of rows; V_EXP replaces expf. */

static TR_TARGET void V_FN(s_swiglu)(float *y, const float *g, const float *u, int64_t i0,
                                     int64_t i1) {
    int64_t i = i0;
    for (; i + V_W <= i1; i += V_W) {
        vf gv = V_LOAD(g + i);
        vf s = V_DIV(gv, V_ADD(V_SET1(1.0f), V_EXP(V_SUB(V_ZERO(), gv))));
        V_STORE(y + i, V_MUL(s, V_LOAD(u + i)));
    }
    for (; i < i1; i++) y[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

static TR_TARGET void V_FN(s_sigmoid)(float *x, int64_t i0, int64_t i1) {
    int64_t i = i0;
    for (; i + V_W <= i1; i += V_W)
        V_STORE(x + i, V_DIV(V_SET1(1.0f), V_ADD(V_SET1(1.0f), V_EXP(V_SUB(V_ZERO(), V_LOAD(x + i))))));
    for (; i < i1; i++) x[i] = 1.0f / (1.0f + expf(-x[i]));
}

/* One row of n: max, then e^(x - max) summed, then scaled. */
static TR_TARGET void V_FN(s_softmax_row)(float *x, int32_t n) {
    int32_t i = 0;
    float mx = x[0];
    if (n >= V_W) {
        vf m = V_LOAD(x);
        for (i = V_W; i + V_W <= n; i += V_W) m = V_MAX(m, V_LOAD(x + i));
        mx = V_HMAX(m);
    }
    for (; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    vf s = V_ZERO();
    float sum = 0;
    vf mv = V_SET1(mx);
    for (i = 0; i + V_W <= n; i += V_W) {
        vf e = V_EXP(V_SUB(V_LOAD(x + i), mv));
        V_STORE(x + i, e);
        s = V_ADD(s, e);
    }
    for (; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    sum += V_HSUM(s);
    vf inv = V_SET1(1.0f / sum);
    for (i = 0; i + V_W <= n; i += V_W) V_STORE(x + i, V_MUL(V_LOAD(x + i), inv));
    for (; i < n; i++) x[i] *= 1.0f / sum;
}

static TR_TARGET void V_FN(s_rmsnorm_row)(float *y, const float *x, const float *w, int32_t D,
                                          float eps) {
    vf s0 = V_ZERO(), s1 = V_ZERO();
    int32_t i = 0;
    for (; i + 2 * V_W <= D; i += 2 * V_W) {
        vf a = V_LOAD(x + i), b = V_LOAD(x + i + V_W);
        s0 = V_FMA(a, a, s0);
        s1 = V_FMA(b, b, s1);
    }
    float ss = V_HSUM(V_ADD(s0, s1));
    for (; i < D; i++) ss += x[i] * x[i];
    float r = 1.0f / sqrtf(ss / (float)D + eps);
    vf rv = V_SET1(r);
    for (i = 0; i + V_W <= D; i += V_W)
        V_STORE(y + i, V_MUL(V_LOAD(w + i), V_MUL(V_LOAD(x + i), rv)));
    for (; i < D; i++) y[i] = w[i] * (x[i] * r);
}

static const s_isa_act_t V_FN(s_act) = {
    .swiglu = V_FN(s_swiglu),
    .sigmoid = V_FN(s_sigmoid),
    .softmax_row = V_FN(s_softmax_row),
    .rmsnorm_row = V_FN(s_rmsnorm_row),
};
