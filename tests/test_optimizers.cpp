#include <catch2/catch.hpp>

#include <type_traits>
#include <latent/latent.hpp>
#include <latent/kernels/square_root.hpp>
#include <latent/optimizers/optimizer.hpp>

#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "helpers.hpp"

using namespace latent;
using Catch::Matchers::Contains;

namespace {

using Point = std::array<double, 2>;

// Three steps of `optimizer` on f(a, b) = a^2 + 10 b^2 (gradient (2a, 20b)) from (1, 1); a and b
// are two parameters of one value each. Checks (a, b) after each step against `expected` to 1e-12.
template <class X> void expect_three_steps(X optimizer, const std::array<Point, 3>& expected) {
    double a = 1, b = 1, grad_a = 0, grad_b = 0;
    const std::vector<Parameter<double>> parameters{{"a", &a, &grad_a, 1}, {"b", &b, &grad_b, 1}};
    for (int step = 0; step < 3; ++step) {
        grad_a = 2 * a;
        grad_b = 20 * b;
        optimizer.step(parameters);
        INFO(X::type_name << " step " << step + 1 << ": (a, b) = (" << a << ", " << b << ")");
        CHECK(std::abs(a - expected[step][0]) < 1e-12);
        CHECK(std::abs(b - expected[step][1]) < 1e-12);
    }
    CHECK(optimizer.state().step == 3);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// SGD: g = grad + wd p;  b = g (t = 1), b = momentum b + (1 - dampening) g (t > 1);
//      g = nesterov ? g + momentum b : b;  p -= lr g

TEST_CASE("SGD: three steps on a^2 + 10 b^2 match hand-computed values", "[optimizers][sgd]") {
    // lr 0.01: a -= 0.01 * 2a (a *= 0.98), b -= 0.01 * 20b (b *= 0.8)
    // step 1: g = (2, 20)         p = (1 - 0.02, 1 - 0.2)               = (0.98, 0.8)
    // step 2: g = (1.96, 16)      p = (0.98 - 0.0196, 0.8 - 0.16)       = (0.9604, 0.64)
    // step 3: g = (1.9208, 12.8)  p = (0.9604 - 0.019208, 0.64 - 0.128) = (0.941192, 0.512)
    expect_three_steps(SGD<double>(0.01), {{{0.98, 0.8}, {0.9604, 0.64}, {0.941192, 0.512}}});
}

TEST_CASE("SGD with momentum: three steps match hand-computed values", "[optimizers][sgd]") {
    // lr 0.01, momentum 0.9
    // step 1: g = (2, 20)         b = g = (2, 20)
    //         p = (1 - 0.02, 1 - 0.2) = (0.98, 0.8)
    // step 2: g = (1.96, 16)      b = (0.9*2 + 1.96, 0.9*20 + 16) = (3.76, 34)
    //         p = (0.98 - 0.0376, 0.8 - 0.34) = (0.9424, 0.46)
    // step 3: g = (1.8848, 9.2)   b = (0.9*3.76 + 1.8848, 0.9*34 + 9.2) = (5.2688, 39.8)
    //         p = (0.9424 - 0.052688, 0.46 - 0.398) = (0.889712, 0.062)
    expect_three_steps(SGD<double>(0.01, 0.9), {{{0.98, 0.8}, {0.9424, 0.46}, {0.889712, 0.062}}});
}

TEST_CASE("SGD with Nesterov momentum: three steps match hand-computed values", "[optimizers][sgd]") {
    // lr 0.01, momentum 0.9, nesterov: step direction d = g + 0.9 b
    // step 1: g = (2, 20)              b = (2, 20)
    //         d = (2 + 1.8, 20 + 18) = (3.8, 38)            p = (0.962, 0.62)
    // step 2: g = (1.924, 12.4)        b = (1.8 + 1.924, 18 + 12.4) = (3.724, 30.4)
    //         d = (1.924 + 3.3516, 12.4 + 27.36) = (5.2756, 39.76)
    //         p = (0.962 - 0.052756, 0.62 - 0.3976) = (0.909244, 0.2224)
    // step 3: g = (1.818488, 4.448)    b = (3.3516 + 1.818488, 27.36 + 4.448) = (5.170088, 31.808)
    //         d = (1.818488 + 4.6530792, 4.448 + 28.6272) = (6.4715672, 33.0752)
    //         p = (0.909244 - 0.064715672, 0.2224 - 0.330752) = (0.844528328, -0.108352)
    expect_three_steps(SGD<double>(0.01, 0.9, true),
                       {{{0.962, 0.62}, {0.909244, 0.2224}, {0.844528328, -0.108352}}});
}

TEST_CASE("SGD with weight decay: three steps match hand-computed values", "[optimizers][sgd]") {
    // lr 0.01, weight_decay 0.1: g = (2.1a, 20.1b), so a *= 1 - 0.021 = 0.979, b *= 1 - 0.201 = 0.799
    // step 1: g = (2.1, 20.1)             p = (0.979, 0.799)
    // step 2: g = (2.0559, 16.0599)       p = (0.979 * 0.979, 0.799 * 0.799) = (0.958441, 0.638401)
    // step 3: g = (2.0127261, 12.8318601) p = (0.958441 * 0.979, 0.638401 * 0.799)
    //                                       = (0.938313739, 0.510082399)
    expect_three_steps(SGD<double>(0.01, 0, false, 0.1),
                       {{{0.979, 0.799}, {0.958441, 0.638401}, {0.938313739, 0.510082399}}});
}

TEST_CASE("SGD with momentum and dampening: three steps match hand-computed values", "[optimizers][sgd]") {
    // lr 0.01, momentum 0.9, dampening 0.5: b = 0.9 b + 0.5 g after the first step (b = g there)
    // step 1: g = (2, 20)          b = (2, 20)                              p = (0.98, 0.8)
    // step 2: g = (1.96, 16)       b = (1.8 + 0.98, 18 + 8) = (2.78, 26)    p = (0.9522, 0.54)
    // step 3: g = (1.9044, 10.8)   b = (2.502 + 0.9522, 23.4 + 5.4) = (3.4542, 28.8)
    //         p = (0.9522 - 0.034542, 0.54 - 0.288) = (0.917658, 0.252)
    expect_three_steps(SGD<double>(0.01, 0.9, false, 0, 0.5),
                       {{{0.98, 0.8}, {0.9522, 0.54}, {0.917658, 0.252}}});
}

// ---------------------------------------------------------------------------------------------
// Adam: m = 0.9 m + 0.1 g;  v = 0.999 v + 0.001 g^2;  step_size = lr / (1 - 0.9^t);
//       denom = sqrt(v) / sqrt(1 - 0.999^t) + 1e-8;  p -= step_size m / denom
// The expected values were evaluated from these formulas in 50-digit decimal arithmetic;
// intermediate values are shown to 10 digits.

TEST_CASE("Adam: three steps match hand-computed values", "[optimizers][adam]") {
    // lr 0.1
    // step 1: g = (2, 20)  m = (0.2, 2)  v = (0.004, 0.4)  step_size = 0.1 / 0.1 = 1
    //         denom = (sqrt(0.004), sqrt(0.4)) / sqrt(0.001) + 1e-8 = (2.00000001, 20.00000001)
    //         p = (1 - 0.2 / 2.00000001, 1 - 2 / 20.00000001) = (0.9000000005, 0.90000000005)
    // step 2: g = (1.800000001, 18.00000000)  m = (0.3600000001, 3.6)
    //         v = (0.007236000004, 0.7236)  step_size = 0.1 / 0.19 = 0.5263157895
    //         denom = sqrt(v) / sqrt(0.001999) + 1e-8 = (1.902579813, 19.02579804)
    //         p = (0.9000000005 - 0.5263157895 * 0.3600000001 / 1.902579813, ...)
    //           = (0.80041222869179215, 0.80041222777330141)
    // step 3: g = (1.600824457, 16.00824456)  m = (0.4840824458, 4.840824456)
    //         v = (0.009791402947, 0.9791402938)  step_size = 0.1 / 0.271 = 0.3690036900
    //         denom = sqrt(v) / sqrt(0.002997001) + 1e-8 = (1.807502973, 18.07502963)
    //         p = (0.70158627294602955, 0.70158627154348333)
    expect_three_steps(Adam<double>(0.1), {{{0.90000000050000000, 0.90000000005000000},
                                            {0.80041222869179215, 0.80041222777330141},
                                            {0.70158627294602955, 0.70158627154348333}}});
}

TEST_CASE("Adam with L2 weight decay: three steps match hand-computed values", "[optimizers][adam]") {
    // lr 0.1, weight_decay 0.1: g = grad + 0.1 p enters m and v
    // step 1: g = (2.1, 20.1)  m = (0.21, 2.01)  v = (0.00441, 0.40401)  step_size = 1
    //         denom = (2.100000010, 20.10000001)
    //         p = (1 - 0.21 / 2.10000001, 1 - 2.01 / 20.10000001) = (0.90000000047619047, 0.90000000004975124)
    // step 2: g = (1.890000001, 18.09000000)  m = (0.3780000001, 3.618)
    //         v = (0.007977690004, 0.73085409)  step_size = 0.5263157895  denom = (1.997708803, 19.12092703)
    //         p = (0.80041222864319475, 0.80041222777279368)
    // step 3: g = (1.680865680, 16.08828578)  m = (0.5082865681, 4.865028578)
    //         v = (0.01079502175, 0.9889561752)  step_size = 0.3690036900  denom = (1.897878121, 18.16540478)
    //         p = (0.70158627287182075, 0.70158627154270801)
    expect_three_steps(Adam<double>(0.1, 0.9, 0.999, 1e-8, 0.1),
                       {{{0.90000000047619047, 0.90000000004975124},
                         {0.80041222864319475, 0.80041222777279368},
                         {0.70158627287182075, 0.70158627154270801}}});
}

TEST_CASE("AdamW: three steps match hand-computed values", "[optimizers][adam]") {
    // lr 0.1, weight_decay 0.1 decoupled: p *= 1 - 0.01 before Adam's update of the plain gradient
    // step 1: g = (2, 20)  p = 0.99 (1, 1)  m = (0.2, 2)  v = (0.004, 0.4)  step_size = 1
    //         denom = (2.00000001, 20.00000001)
    //         p = (0.99 - 0.0999999995, 0.99 - 0.099999999950) = (0.8900000005, 0.89000000005)
    // step 2: g = (1.780000001, 17.8)  m = (0.3580000001, 3.58)  v = (0.007164400004, 0.71644)
    //         step_size = 0.5263157895  denom = (1.893143427, 18.93143418)
    //         p = (0.99 * 0.8900000005 - 0.5263157895 * 0.3580000001 / 1.893143427, ...)
    //           = (0.78157185593650413, 0.78157185502061353)
    // step 3: g = (1.563143712, 15.63143710)  m = (0.4785143713, 4.785143710)
    //         v = (0.009600653868, 0.9600653859)  step_size = 0.3690036900  denom = (1.789810142, 17.89810132)
    //         p = (0.67510122164006905, 0.67510122024585112)
    expect_three_steps(AdamW<double>(0.1, 0.9, 0.999, 1e-8, 0.1),
                       {{{0.89000000050000000, 0.89000000005000000},
                         {0.78157185593650413, 0.78157185502061353},
                         {0.67510122164006905, 0.67510122024585112}}});
}

TEST_CASE("square_roots: every path gives std::sqrt's bits, for any float bit pattern and every tail",
          "[optimizers][adam][kernels]") {
    using limits = std::numeric_limits<float>;
    const std::vector<float> x = test::with_any_bit_patterns(
        {}, 11, {0.0f, -0.0f, limits::infinity(), -limits::infinity(), limits::quiet_NaN(), limits::denorm_min(),
                 limits::min(), limits::max(), 2.0f, 1e-8f});
    const Index count = static_cast<Index>(x.size());
    std::vector<float> portable(x.size());
    kernels::square_roots(Isa::Portable, x.data(), portable.data(), count);
    Index differ = 0;
    for (Index i = 0; i < count; ++i)
        differ += !test::same_float_bits(portable[static_cast<std::size_t>(i)], std::sqrt(x[static_cast<std::size_t>(i)]));
    CHECK(differ == 0);
    test::check_vector_paths_match_portable(
        [](Isa isa, const float* in, float* out, Index n) { kernels::square_roots(isa, in, out, n); }, x, portable);

    // double: the same rule, on every path this machine has, through a tail of 3
    const std::vector<double> values{0.0, -0.0, 2.0, 1e-300, 3e300, -1.0, 0.1, 7.0, 1e-310, 12345.678, 0.5};
    for (Isa isa : {Isa::Portable, Isa::Avx2, Isa::Avx512}) {
        if (static_cast<int>(isa) > static_cast<int>(detail::detected_isa())) continue;
        INFO("path " << isa_name(isa));
        std::vector<double> roots(values.size());
        kernels::square_roots(isa, values.data(), roots.data(), static_cast<Index>(values.size()));
        for (std::size_t i = 0; i < values.size(); ++i) {
            const double expected = std::sqrt(values[i]);
            CHECK((std::memcmp(&roots[i], &expected, sizeof expected) == 0 || (std::isnan(roots[i]) && std::isnan(expected))));
        }
    }
}

#if !defined(__FMA__)
// Float Adam, AdamW and Adam with L2 decay against a plain loop of PyTorch's rule with a correctly
// rounded square root (a build without FMA, as the default x86-64 one, rounds this loop's
// products as the library does). The reference fails against a reciprocal-sqrt estimate, which
// Eigen's float sqrt is, and whose bits differ between CPU models.
TEST_CASE("Adam, AdamW (float): ten steps on 5,000 values equal a scalar loop with std::sqrt, bit for bit",
          "[optimizers][adam]") {
    struct Case {
        Optimizer<float> optimizer;
        double weight_decay;
        bool decoupled;
    };
    const double lr = 0.01, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
    const std::vector<Case> cases{{Adam<float>(lr), 0.0, false},
                                  {Adam<float>(lr, beta1, beta2, eps, 0.05), 0.05, false},
                                  {AdamW<float>(lr, beta1, beta2, eps, 0.05), 0.05, true}};
    const Index size = 5000;  // not a multiple of any vector width or of the block size
    for (Case c : cases) {
        INFO(c.optimizer.type() << ", weight decay " << c.weight_decay);
        Rng rng(3);
        std::vector<float> value(size), grad(size), expected(size), m(size, 0.0f), v(size, 0.0f);
        for (float& x : value) x = static_cast<float>(rng.normal());
        expected = value;
        const std::vector<Parameter<float>> parameters{{"weight", value.data(), grad.data(), size}};
        for (int step = 1; step <= 10; ++step) {
            for (float& g : grad) g = static_cast<float>(rng.normal() * std::pow(10.0, rng.uniform() * 6 - 4));
            c.optimizer.step(parameters);
            const auto minus_step_size = static_cast<float>(-(lr / (1 - std::pow(beta1, step))));
            const auto bias_correction2_sqrt = static_cast<float>(std::sqrt(1 - std::pow(beta2, step)));
            const auto factor = static_cast<float>(c.decoupled ? 1 - lr * c.weight_decay : 1.0);
            for (Index i = 0; i < size; ++i) {
                float& p = expected[static_cast<std::size_t>(i)];
                p = p * factor;
                const float g = c.decoupled ? grad[i] : grad[i] + static_cast<float>(c.weight_decay) * p;
                m[i] = m[i] * static_cast<float>(beta1) + static_cast<float>(1 - beta1) * g;
                v[i] = v[i] * static_cast<float>(beta2) + static_cast<float>(1 - beta2) * (g * g);
                p = p + minus_step_size * (m[i] / (std::sqrt(v[i]) / bias_correction2_sqrt + static_cast<float>(eps)));
            }
        }
        Index differ = 0;
        for (Index i = 0; i < size; ++i) differ += !test::same_float_bits(value[i], expected[i]);
        CHECK(differ == 0);
    }
}
#endif

// ---------------------------------------------------------------------------------------------
// RMSprop: s = 0.99 s + 0.01 g^2;  centered: c = 0.99 c + 0.01 g, avg = sqrt(s - c^2) + 1e-8;
//          else avg = sqrt(s) + 1e-8;  momentum: b = momentum b + g / avg, p -= lr b;
//          else p -= lr g / avg.  (50-digit decimal evaluation, intermediates to 10 digits.)

TEST_CASE("RMSprop: three steps match hand-computed values", "[optimizers][rmsprop]") {
    // lr 0.01
    // step 1: g = (2, 20)  s = (0.04, 4)  avg = (0.2 + 1e-8, 2 + 1e-8)
    //         p = (1 - 0.01 * 2 / 0.20000001, 1 - 0.01 * 20 / 2.00000001) = (0.900000005, 0.9000000005)
    // step 2: g = (1.800000010, 18.00000001)  s = (0.07200000036, 7.200000004)
    //         avg = (0.2683281680, 2.683281584)  p = (0.83291796797003308, 0.83291796140450902)
    // step 3: g = (1.665835936, 16.65835923)  s = (0.09903009401, 9.903009325)
    //         avg = (0.3146904833, 3.146904731)  p = (0.77998227324363502, 0.77998226537878730)
    expect_three_steps(RMSprop<double>(0.01), {{{0.90000000499999975, 0.90000000050000000},
                                                {0.83291796797003308, 0.83291796140450902},
                                                {0.77998227324363502, 0.77998226537878730}}});
}

TEST_CASE("RMSprop centered: three steps match hand-computed values", "[optimizers][rmsprop]") {
    // lr 0.01, centered: the running mean c of g is subtracted from s inside the root
    // step 1: g = (2, 20)  s = (0.04, 4)  c = (0.02, 0.2)
    //         avg = (sqrt(0.04 - 0.0004), sqrt(4 - 0.04)) + 1e-8 = (0.1989974974, 1.989974884)
    //         p = (1 - 0.02 / 0.1989974974, 1 - 0.2 / 1.989974884) = (0.89949622352458359, 0.89949621897912929)
    // step 2: g = (1.798992447, 17.98992438)  s = (0.07196373825, 7.196373792)
    //         c = (0.03778992447, 0.3778992438)  avg = (0.2655855138, 2.655855042)
    //         p = (0.83175937971154478, 0.83175937305920614)
    // step 3: g = (1.663518759, 16.63518746)  s = (0.09891704749, 9.891704673)
    //         c = (0.05404721282, 0.5404721260)  avg = (0.3098321360, 3.098321258)
    //         p = (0.77806841075341110, 0.77806840276327080)
    expect_three_steps(RMSprop<double>(0.01, 0.99, 1e-8, 0, 0, true),
                       {{{0.89949622352458359, 0.89949621897912929},
                         {0.83175937971154478, 0.83175937305920614},
                         {0.77806841075341110, 0.77806840276327080}}});
}

TEST_CASE("RMSprop with momentum: three steps match hand-computed values", "[optimizers][rmsprop]") {
    // lr 0.01, momentum 0.9: b = 0.9 b + g / avg, p -= 0.01 b
    // step 1: g = (2, 20)  s = (0.04, 4)  avg = (0.20000001, 2.00000001)
    //         b = (2 / 0.20000001, 20 / 2.00000001) = (9.9999995, 9.999999950)
    //         p = (0.900000005, 0.9000000005)
    // step 2: g = (1.800000010, 18.00000001)  avg = (0.2683281680, 2.683281584)
    //         b = (0.9 * 9.9999995 + 1.80000001 / 0.268328168, ...) = (15.70820325, 15.70820386)
    //         p = (0.74291797247003286, 0.74291796185450901)
    // step 3: g = (1.485835945, 14.85835924)  s = (0.09335708491, 9.335708396)
    //         avg = (0.3055439265, 3.055439159)  b = (19.00030382, 19.00030447)
    //         p = (0.55291493422896235, 0.55291491712406001)
    expect_three_steps(RMSprop<double>(0.01, 0.99, 1e-8, 0, 0.9),
                       {{{0.90000000499999975, 0.90000000050000000},
                         {0.74291797247003286, 0.74291796185450901},
                         {0.55291493422896235, 0.55291491712406001}}});
}

TEST_CASE("RMSprop with weight decay: three steps match hand-computed values", "[optimizers][rmsprop]") {
    // lr 0.01, weight_decay 0.1: g = grad + 0.1 p
    // step 1: g = (2.1, 20.1)  s = (0.0441, 4.0401)  avg = (0.21000001, 2.01000001)
    //         p = (1 - 0.021 / 0.21000001, 1 - 0.201 / 2.01000001) = (0.90000000476190454, 0.90000000049751244)
    // step 2: g = (1.890000010, 18.09000001)  s = (0.07938000038, 7.272180004)
    //         avg = (0.2817445758, 2.696697992)  p = (0.83291796762265087, 0.83291796140087965)
    // step 3: g = (1.749127732, 16.74165102)  s = (0.1091806786, 10.00228699)
    //         avg = (0.3304250069, 3.162639255)  p = (0.77998227282750552, 0.77998226537443968)
    expect_three_steps(RMSprop<double>(0.01, 0.99, 1e-8, 0.1),
                       {{{0.90000000476190454, 0.90000000049751244},
                         {0.83291796762265087, 0.83291796140087965},
                         {0.77998227282750552, 0.77998226537443968}}});
}

// ---------------------------------------------------------------------------------------------
// Adadelta: s = 0.9 s + 0.1 g^2;  delta = sqrt(u + 1e-6) / sqrt(s + 1e-6) g;
//           u = 0.9 u + 0.1 delta^2;  p -= lr delta.  (50-digit decimal evaluation.)

TEST_CASE("Adadelta: three steps match hand-computed values", "[optimizers][adadelta]") {
    // lr 1.0 (PyTorch's default)
    // step 1: g = (2, 20)  s = (0.4, 40)
    //         delta = (sqrt(1e-6) / sqrt(0.400001) * 2, sqrt(1e-6) / sqrt(40.000001) * 20)
    //               = (0.003162273707, 0.003162277621)
    //         u = 0.1 delta^2 = (9.999975000e-7, 9.999999750e-7)
    //         p = (0.99683772629267128, 0.99683772237936009)
    // step 2: g = (1.993675453, 19.93675445)  s = (0.7574741810, 75.74741779)
    //         delta = (0.003239552214, 0.003239556330)  u = (1.949467605e-6, 1.949472499e-6)
    //         p = (0.99359817407830563, 0.99359816604956104)
    // step 3: g = (1.987196348, 19.87196332)  s = (1.076621696, 107.6621686)
    //         delta = (0.003289128420, 0.003289132649)  u = (2.836357421e-6, 2.836364607e-6)
    //         p = (0.99030904565805804, 0.99030903340084838)
    expect_three_steps(Adadelta<double>(1.0, 0.9), {{{0.99683772629267128, 0.99683772237936009},
                                             {0.99359817407830563, 0.99359816604956104},
                                             {0.99030904565805804, 0.99030903340084838}}});
}

TEST_CASE("Adadelta with weight decay: three steps match hand-computed values", "[optimizers][adadelta]") {
    // lr 1.0, weight_decay 0.1: g = grad + 0.1 p
    // step 1: g = (2.1, 20.1)  s = (0.441, 40.401)  delta = (0.003162274075, 0.003162277621)
    //         u = (9.999977324e-7, 9.999999752e-7)  p = (0.99683772592517434, 0.99683772237896775)
    // step 2: g = (2.093359224, 20.03643822)  s = (0.8351152843, 76.50678565)
    //         delta = (0.003239552601, 0.003239556330)  p = (0.99359817332433057, 0.99359816604875610)
    // step 3: g = (2.086556164, 19.97132314)  s = (1.186975418, 108.7414819)
    //         delta = (0.003289128817, 0.003289132649)  p = (0.99030904450699012, 0.99030903339961950)
    expect_three_steps(Adadelta<double>(1.0, 0.9, 1e-6, 0.1),
                       {{{0.99683772592517434, 0.99683772237896775},
                         {0.99359817332433057, 0.99359816604875610},
                         {0.99030904450699012, 0.99030903339961950}}});
}

// ---------------------------------------------------------------------------------------------

namespace {

// A small float problem with two parameters (37 and 5 values) and gradient 2 c_i p_i - 0.1,
// where the curvatures c_i differ per value.
struct FloatProblem {
    std::vector<float> weight, grad_weight, bias, grad_bias;

    FloatProblem() {
        Rng rng(7);
        for (int i = 0; i < 37; ++i) weight.push_back(static_cast<float>(rng.uniform(-1, 1)));
        for (int i = 0; i < 5; ++i) bias.push_back(static_cast<float>(rng.uniform(-1, 1)));
        grad_weight.assign(weight.size(), 0.0f);
        grad_bias.assign(bias.size(), 0.0f);
    }
    std::vector<Parameter<float>> parameters() {
        return {{"weight", weight.data(), grad_weight.data(), 37}, {"bias", bias.data(), grad_bias.data(), 5}};
    }
    void compute_gradients() {
        for (std::size_t i = 0; i < weight.size(); ++i)
            grad_weight[i] = 2.0f * (1.0f + 0.25f * static_cast<float>(i)) * weight[i] - 0.1f;
        for (std::size_t i = 0; i < bias.size(); ++i) grad_bias[i] = 2.0f * bias[i] - 0.1f;
    }
    void step(Optimizer<float>& optimizer) {
        compute_gradients();
        optimizer.step(parameters());
    }
    bool operator==(const FloatProblem& other) const {
        return weight == other.weight && bias == other.bias;  // exact float comparison
    }
};

std::vector<Optimizer<float>> every_optimizer_with_state() {
    return {SGD<float>(0.05, 0.9, true),
            Adam<float>(0.01, 0.8, 0.99, 1e-8, 0.01),
            AdamW<float>(0.01),
            RMSprop<float>(0.01, 0.9, 1e-8, 0.01, 0.5, true),
            Adadelta<float>(1.0, 0.9, 1e-6, 0.01)};
}

}  // namespace

TEST_CASE("optimizers: config() + state() copied into a fresh optimizer continue bit-identically",
          "[optimizers][state]") {
    for (Optimizer<float> original : every_optimizer_with_state()) {
        INFO(original.type());
        FloatProblem problem;
        problem.step(original);
        problem.step(original);

        // what a saved file holds: type, config and state; rebuilt into a fresh optimizer
        const auto registry = Registry<float>::builtin();
        Optimizer<float> resumed = registry.create_optimizer(original.type(), original.config());
        resumed.state() = original.state();
        FloatProblem resumed_problem = problem;
        // without the state, a fresh optimizer continues differently (so the check below can fail)
        Optimizer<float> restarted = registry.create_optimizer(original.type(), original.config());
        FloatProblem restarted_problem = problem;

        for (int step = 0; step < 2; ++step) {
            problem.step(original);
            resumed_problem.step(resumed);
            restarted_problem.step(restarted);
        }
        CHECK(resumed_problem == problem);
        CHECK_FALSE(restarted_problem == problem);
        CHECK(resumed.state().step == 4);
        CHECK(resumed.state().buffers == original.state().buffers);
    }
}

TEST_CASE("optimizers: state buffers are created at the first step in the documented order",
          "[optimizers][state]") {
    FloatProblem problem;
    Optimizer<float> adam = Adam<float>(0.01);
    CHECK(adam.state().buffers.empty());
    problem.step(adam);
    // Adam: m of weight, v of weight, m of bias, v of bias; after one step m = 0.1 g, v = 0.001 g^2
    const auto& buffers = adam.state().buffers;
    REQUIRE(buffers.size() == 4);
    CHECK(buffers[0].size() == 37);
    CHECK(buffers[2].size() == 5);
    CHECK(buffers[0][3] == Approx(0.1 * problem.grad_weight[3]));
    CHECK(buffers[1][3] == Approx(0.001 * problem.grad_weight[3] * problem.grad_weight[3]));
    CHECK(buffers[3][1] == Approx(0.001 * problem.grad_bias[1] * problem.grad_bias[1]));

    // RMSprop: square_avg, then momentum buffer (momentum > 0), then grad_avg (centered)
    Optimizer<float> rmsprop = RMSprop<float>(0.01, 0.99, 1e-8, 0, 0.9, true);
    FloatProblem second;
    second.step(rmsprop);
    REQUIRE(rmsprop.state().buffers.size() == 6);
    CHECK(rmsprop.state().buffers[2][0] == Approx(0.01 * second.grad_weight[0]));  // grad_avg
    CHECK(rmsprop.state().buffers[0][0] ==
          Approx(0.01 * second.grad_weight[0] * second.grad_weight[0]));  // square_avg

    // SGD without momentum keeps no buffer; with momentum, one per parameter
    Optimizer<float> sgd = SGD<float>(0.1);
    FloatProblem third;
    third.step(sgd);
    CHECK(sgd.state().buffers.empty());
    CHECK(sgd.state().step == 1);
}

TEST_CASE("optimizers: a different parameter list on a later step throws ArgumentError",
          "[optimizers][state]") {
    for (Optimizer<float> optimizer : every_optimizer_with_state()) {
        INFO(optimizer.type());
        FloatProblem problem;
        problem.step(optimizer);
        auto parameters = problem.parameters();
        parameters[1].size = 4;  // bias shrinks
        CHECK_THROWS_MATCHES(optimizer.step(parameters), ArgumentError,
                             Catch::Matchers::Message(optimizer.type() +
                                                      " step: parameter 1 ('bias') has 4 values, but 5 "
                                                      "at earlier steps (pass the same parameter list at "
                                                      "every step)"));
        parameters.pop_back();
        CHECK_THROWS_WITH(optimizer.step(parameters), Contains("got 1 parameters, but earlier steps had 2"));
    }
    // SGD without momentum keeps no buffers, yet still checks the list
    Optimizer<float> sgd = SGD<float>(0.1);
    FloatProblem problem;
    problem.step(sgd);
    auto parameters = problem.parameters();
    std::swap(parameters[0], parameters[1]);
    CHECK_THROWS_WITH(sgd.step(parameters), Contains("parameter 0 ('bias') has 5 values, but 37"));
}

TEST_CASE("optimizers: a loaded state that does not fit the parameters throws ArgumentError",
          "[optimizers][state]") {
    FloatProblem problem;
    Optimizer<float> adam = Adam<float>(0.01);
    problem.step(adam);
    Optimizer<float> fresh = Adam<float>(0.01);
    fresh.state() = adam.state();
    fresh.state().buffers[3].resize(6);
    CHECK_THROWS_WITH(fresh.step(problem.parameters()),
                      Contains("state buffer 3 holds 6 values, but parameter 1 ('bias') has 5"));
    fresh.state().buffers.pop_back();
    CHECK_THROWS_WITH(fresh.step(problem.parameters()), Contains("the state holds 3 buffers, expected 4"));
}

TEST_CASE("optimizers: updates are bit-identical with 1 and 2 threads on a parameter split into slices",
          "[optimizers][threads]") {
    const int threads = num_threads();
    const Index size = 100000;  // 7 slices of 16384 values: enough work to use both threads
    for (Optimizer<float> prototype : every_optimizer_with_state()) {
        INFO(prototype.type());
        std::vector<float> results[2];
        for (int run = 0; run < 2; ++run) {
            set_num_threads(run + 1);
            Optimizer<float> optimizer = prototype;
            std::vector<float> value(size), grad(size);
            for (Index i = 0; i < size; ++i) value[i] = std::sin(0.001f * static_cast<float>(i));
            const std::vector<Parameter<float>> parameters{{"weight", value.data(), grad.data(), size}};
            for (int step = 0; step < 3; ++step) {
                for (Index i = 0; i < size; ++i) grad[i] = 2 * value[i] - 0.3f;
                optimizer.step(parameters);
            }
            results[run] = value;
        }
        CHECK(results[0] == results[1]);
    }
    set_num_threads(threads);
}

TEST_CASE("optimizers: hyper-parameters out of range throw ArgumentError", "[optimizers][arguments]") {
    CHECK_THROWS_MATCHES(SGD<float>(-0.1), ArgumentError,
                         Catch::Matchers::Message("SGD: learning rate must be finite and >= 0, got -0.1"));
    CHECK_THROWS_AS(SGD<float>(std::nan("")), ArgumentError);
    CHECK_THROWS_AS(SGD<float>(0.1, -0.9), ArgumentError);
    CHECK_THROWS_WITH(SGD<float>(0.1, 0, true), Contains("nesterov momentum requires momentum > 0"));
    CHECK_THROWS_AS(SGD<float>(0.1, 0.9, true, 0, 0.1), ArgumentError);
    CHECK_THROWS_AS(SGD<float>(0.1, 0, false, -1e-4), ArgumentError);
    CHECK_THROWS_MATCHES(Adam<float>(1e-3, 1.0), ArgumentError,
                         Catch::Matchers::Message("Adam: beta1 must be in [0, 1), got 1"));
    CHECK_THROWS_AS(Adam<float>(1e-3, 0.9, -0.1), ArgumentError);
    CHECK_THROWS_WITH(Adam<float>(1e-3, 0.9, 0.999, -1e-8), Contains("eps must be finite and >= 0, got -1e-08"));
    CHECK_THROWS_AS(AdamW<float>(1e-3, 0.9, 0.999, 1e-8, -0.01), ArgumentError);
    CHECK_THROWS_AS(RMSprop<float>(0.01, 1.5), ArgumentError);
    CHECK_THROWS_AS(RMSprop<float>(0.01, 0.99, 1e-8, 0, -0.9), ArgumentError);
    CHECK_THROWS_AS(Adadelta<float>(1.0, -0.1), ArgumentError);
    CHECK_THROWS_AS(Adadelta<float>(1.0, 0.9, -1e-6), ArgumentError);

    Optimizer<float> optimizer = Adam<float>();
    CHECK_THROWS_AS(optimizer.set_learning_rate(-1e-3), ArgumentError);
    CHECK(optimizer.learning_rate() == 1e-3);
}

TEST_CASE("optimizers: defaults are PyTorch's (Adadelta: rho 0.95 as Zeiler and Keras)", "[optimizers][defaults]") {
    CHECK(SGD<float>().config().str() == "lr=0.01 momentum=0 nesterov=0 weight_decay=0 dampening=0");
    CHECK(Adam<float>().config().str() == "lr=0.001 beta1=0.9 beta2=0.999 eps=1e-08 weight_decay=0");
    CHECK(AdamW<float>().config().str() == "lr=0.001 beta1=0.9 beta2=0.999 eps=1e-08 weight_decay=0.01");
    CHECK(RMSprop<float>().config().str() ==
          "lr=0.01 alpha=0.99 eps=1e-08 weight_decay=0 momentum=0 centered=0");
    CHECK(Adadelta<float>().config().str() == "lr=1 rho=0.95 eps=1e-06 weight_decay=0");
}

TEST_CASE("Optimizer: forwards to the held optimizer, rebuilds from its config, rejects unknown types",
          "[optimizers][optimizer]") {
    Optimizer<float> optimizer;
    CHECK(optimizer.type() == "Adam");
    optimizer = RMSprop<float>(0.02, 0.9, 1e-8, 0, 0.5, true);
    CHECK(optimizer.type() == "RMSprop");
    REQUIRE(optimizer.get<RMSprop<float>>() != nullptr);
    CHECK(optimizer.get<Adam<float>>() == nullptr);
    CHECK(optimizer.learning_rate() == 0.02);
    optimizer.set_learning_rate(0.005);
    CHECK(optimizer.get<RMSprop<float>>()->learning_rate() == 0.005);

    const auto registry = Registry<float>::builtin();
    for (const Optimizer<float>& original : every_optimizer_with_state()) {
        const Optimizer<float> rebuilt = registry.create_optimizer(original.type(), original.config());
        CHECK(rebuilt.type() == original.type());
        CHECK(rebuilt.config().str() == original.config().str());
    }
    CHECK_THROWS_MATCHES(registry.create_optimizer("Adagrad", Config()), FormatError,
                         Catch::Matchers::Message("unknown optimizer type 'Adagrad' (one of your own? register it: "
                                                  "registry.add_optimizer<Adagrad<T>>())"));
    CHECK_THROWS_AS(registry.create_optimizer("SGD", Config().set("lr", 0.1)), FormatError);
}

TEST_CASE("sgd: a number in the nesterov position does not compile", "[optimizers][sgd]") {
    // SGD(0.1, 0.9, 1e-4) would otherwise turn 1e-4 into nesterov = true.
    STATIC_REQUIRE_FALSE(std::is_constructible_v<SGD<float>, double, double, double>);
    STATIC_REQUIRE(std::is_constructible_v<SGD<float>, double, double, bool, double>);
}
