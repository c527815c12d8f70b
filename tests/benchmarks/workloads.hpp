// The four benchmark networks, shared by latent_bench, latent_microbench and the allocation test.
// torch_bench.py builds the same networks layer for layer (same shapes, batch, loss, optimizer).
//
//   W1  dense AE 784-256-128-32-128-256-784, ReLU, Sigmoid output; BCE; batch 256
//   W2  MNIST conv denoiser: Conv32-Pool-Conv32-Pool | Conv32-Up-Conv32-Up-Conv1 (3x3 same convs
//       + ReLU, MaxPool 2, nearest UpSample 2, last conv + Sigmoid); BCE; batch 32 and 128
//   W3  Olivetti strided conv AE at 32x32: Conv16/32/64/128 3x3 s2 + ReLU, Flatten, Dense 256 +
//       Sigmoid (the code) | Dense 512 + ReLU, Reshape (128,2,2), ConvT64/32/16 s2 + ReLU,
//       ConvT1 s2 + Sigmoid; SumSquaredError (1/2 sum of squared errors); batch 50
//   W4  128x128x3 conv AE with a 300-d dense code: Conv32/64/128/256 3x3 s2 + ReLU, Flatten,
//       Dense 300 | Dense 256*8*8 + ReLU, Reshape (256,8,8), ConvT128/64/32 s2 + ReLU,
//       ConvT3 s2 + Sigmoid; MSE; batch 16
// All use Adam (lr 1e-3, PyTorch's defaults) and "same" padding.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <latent/latent.hpp>

namespace latent::bench {

enum class LossKind { BinaryCrossEntropy, SumSquaredError, MeanSquaredError };

struct Workload {
    std::string name;            // "W1" .. "W4"
    std::string description;
    Shape input;                 // one sample
    std::vector<Index> batches;  // the batch sizes the comparison runs
    LossKind loss;
    // Multiply-adds of one sample's forward pass, summed over the Dense (inputs x units),
    // Conv2D (output positions x filters x kernel area x input channels) and ConvTranspose2D
    // (input positions x filters x kernel area x input channels) layers.
    double forward_macs;
};

inline std::vector<Workload> all_workloads() {
    return {
        {"W1", "dense AE 784-256-128-32-128-256-784", Shape{784, 1, 1}, {256}, LossKind::BinaryCrossEntropy, 475136},
        {"W2", "MNIST conv denoiser 28x28", Shape{1, 28, 28}, {32, 128}, LossKind::BinaryCrossEntropy, 4515840},
        {"W3", "Olivetti strided conv AE 32x32", Shape{1, 32, 32}, {50}, LossKind::SumSquaredError, 2105344},
        {"W4", "128x128x3 conv AE, 300-d code", Shape{3, 128, 128}, {16}, LossKind::MeanSquaredError, 130154496},
    };
}

// The workload called `name`; ArgumentError naming the known ones otherwise.
// Floating-point operations per sample: 2 per multiply-add; a training step counts three
// passes (forward, input gradient, weight gradient), the usual convention.
inline double flops_per_sample(const Workload& workload, bool training) {
    return 2.0 * workload.forward_macs * (training ? 3.0 : 1.0);
}

inline Workload find_workload(const std::string& name) {
    for (const auto& workload : all_workloads())
        if (workload.name == name) return workload;
    throw ArgumentError("unknown workload '" + name + "' (known: W1, W2, W3, W4)");
}

inline Loss<float> make_loss(LossKind kind) {
    switch (kind) {
    case LossKind::BinaryCrossEntropy: return BinaryCrossEntropy<float>();
    case LossKind::SumSquaredError: return SumSquaredError<float>();
    case LossKind::MeanSquaredError: break;
    }
    return MeanSquaredError<float>();
}

inline Autoencoder<float> dense_autoencoder(std::uint64_t seed) {
    Encoder<float> encoder{
        Dense<float>(256), ReLU<float>(), Dense<float>(128), ReLU<float>(), Dense<float>(32), ReLU<float>(),
    };
    Decoder<float> decoder{
        Dense<float>(128), ReLU<float>(), Dense<float>(256), ReLU<float>(), Dense<float>(784), Sigmoid<float>(),
    };
    return Autoencoder<float>(std::move(encoder), std::move(decoder), Shape{784, 1, 1}, seed);
}

inline Autoencoder<float> mnist_conv_denoiser(std::uint64_t seed) {
    Encoder<float> encoder{
        Conv2D<float>(32, 3), ReLU<float>(), MaxPool2D<float>(2),
        Conv2D<float>(32, 3), ReLU<float>(), MaxPool2D<float>(2),
    };
    Decoder<float> decoder{
        Conv2D<float>(32, 3), ReLU<float>(), UpSample2D<float>(2),
        Conv2D<float>(32, 3), ReLU<float>(), UpSample2D<float>(2),
        Conv2D<float>(1, 3),  Sigmoid<float>(),
    };
    return Autoencoder<float>(std::move(encoder), std::move(decoder), Shape{1, 28, 28}, seed);
}

inline Autoencoder<float> olivetti_strided(std::uint64_t seed) {
    Encoder<float> encoder{
        Conv2D<float>(16, 3, 2), ReLU<float>(), Conv2D<float>(32, 3, 2), ReLU<float>(),
        Conv2D<float>(64, 3, 2), ReLU<float>(), Conv2D<float>(128, 3, 2), ReLU<float>(),
        Flatten<float>(), Dense<float>(256), Sigmoid<float>(),
    };
    Decoder<float> decoder{
        Dense<float>(512), ReLU<float>(), Reshape<float>(Shape{128, 2, 2}),
        ConvTranspose2D<float>(64, 3, 2), ReLU<float>(), ConvTranspose2D<float>(32, 3, 2), ReLU<float>(),
        ConvTranspose2D<float>(16, 3, 2), ReLU<float>(), ConvTranspose2D<float>(1, 3, 2), Sigmoid<float>(),
    };
    return Autoencoder<float>(std::move(encoder), std::move(decoder), Shape{1, 32, 32}, seed);
}

inline Autoencoder<float> color_128(std::uint64_t seed) {
    Encoder<float> encoder{
        Conv2D<float>(32, 3, 2), ReLU<float>(), Conv2D<float>(64, 3, 2), ReLU<float>(),
        Conv2D<float>(128, 3, 2), ReLU<float>(), Conv2D<float>(256, 3, 2), ReLU<float>(),
        Flatten<float>(), Dense<float>(300),
    };
    Decoder<float> decoder{
        Dense<float>(256 * 8 * 8), ReLU<float>(), Reshape<float>(Shape{256, 8, 8}),
        ConvTranspose2D<float>(128, 3, 2), ReLU<float>(), ConvTranspose2D<float>(64, 3, 2), ReLU<float>(),
        ConvTranspose2D<float>(32, 3, 2), ReLU<float>(), ConvTranspose2D<float>(3, 3, 2), Sigmoid<float>(),
    };
    return Autoencoder<float>(std::move(encoder), std::move(decoder), Shape{3, 128, 128}, seed);
}

inline Autoencoder<float> build_model(const Workload& workload, std::uint64_t seed = 0) {
    if (workload.name == "W1") return dense_autoencoder(seed);
    if (workload.name == "W2") return mnist_conv_denoiser(seed);
    if (workload.name == "W3") return olivetti_strided(seed);
    if (workload.name == "W4") return color_128(seed);
    throw ArgumentError("unknown workload '" + workload.name + "'");
}

// `batch` samples of the workload's input shape, uniform in [0, 1).
inline Tensor<float> random_batch(const Workload& workload, Index batch, std::uint64_t seed = 1) {
    Tensor<float> data = make_tensor<float>(batch, workload.input);
    Rng rng(seed);
    for (Index i = 0; i < data.size(); ++i) data.data()[i] = static_cast<float>(rng.uniform());
    return data;
}

}  // namespace latent::bench
