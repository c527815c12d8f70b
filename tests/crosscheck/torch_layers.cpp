// The latent side of torch_layers.py: runs one layer in double on .npy inputs that the script
// wrote and writes its outputs as .npy files beside them.
//
//   torch_layers BatchNorm   DIR   (also BatchNorm2D): reads weight, bias, x1, dy1, x2, dy2, x3, dy3;
//       passes 1 and 2 train (batch statistics), pass 3 evaluates (running statistics); writes
//       per pass k: y<k>, dx<k>, grad_weight<k>, grad_bias<k>, running_mean<k>, running_var<k>
//   torch_layers Dropout P DIR: reads x, dy; one training pass; writes y, dx
//   torch_layers Penalties DIR: ContractiveDense(units, 0.7) with weight, bias on x, dy;
//       KLSparsity(0.2, 1.5) on h, dh; ActivityL1(0.3) on a, da; one training pass each; writes
//       contractive_y, contractive_dx, contractive_grad_weight, contractive_grad_bias,
//       kl_dx, l1_dx and the terms (contractive_term, kl_term, l1_term)
// Vectors are stored as (1, K, 1, 1) arrays, the weight matrix as (units, inputs, 1, 1), a
// value as (1, 1, 1, 1).
#include <latent/data/npy.hpp>
#include <latent/layers/batch_norm.hpp>
#include <latent/layers/contractive_dense.hpp>
#include <latent/layers/dropout.hpp>
#include <latent/layers/penalties.hpp>

#include <cstdlib>
#include <iostream>
#include <string>

using namespace latent;

namespace {

Tensor<double> load(const std::string& dir, const std::string& name) {
    return load_npy<double>(dir + "/" + name + ".npy");
}

void save(const std::string& dir, const std::string& name, const Tensor<double>& tensor) {
    save_npy(dir + "/" + name + ".npy", tensor);
}

// A (1, size, 1, 1) tensor of `size` values.
Tensor<double> as_vector(const double* values, Index size) {
    Tensor<double> tensor(1, size, 1, 1);
    std::copy_n(values, size, tensor.data());
    return tensor;
}

// One forward and backward of `layer` in `pass`, with fresh parameter gradients, saved as pass `k`.
void run_pass(Layer<double>& layer, const std::string& dir, int k, const Pass& pass) {
    const std::string suffix = std::to_string(k);
    const Tensor<double> x = load(dir, "x" + suffix), dy = load(dir, "dy" + suffix);
    Tensor<double> y, dx;
    layer.zero_grad();
    layer.forward(x, y, pass);
    layer.backward(x, y, dy, dx, pass);
    save(dir, "y" + suffix, y);
    save(dir, "dx" + suffix, dx);
    for (const auto& parameter : layer.parameters())
        save(dir, "grad_" + parameter.name + suffix, as_vector(parameter.grad, parameter.size));
    for (const auto& buffer : layer.buffers()) save(dir, buffer.name + suffix, as_vector(buffer.value, buffer.size));
}

void batch_norm(Layer<double> layer, const std::string& dir) {
    const Tensor<double> x1 = load(dir, "x1");
    Rng rng(0);
    layer.build(sample_shape(x1), rng);
    for (const auto& parameter : layer.parameters()) {
        const Tensor<double> values = load(dir, parameter.name);
        std::copy_n(values.data(), parameter.size, parameter.value);
    }
    run_pass(layer, dir, 1, Pass::training_batch(1, 0, 0, x1.dimension(0)));
    run_pass(layer, dir, 2, Pass::training_batch(1, 0, 1, x1.dimension(0)));
    run_pass(layer, dir, 3, Pass::evaluation());
}

void dropout(double p, const std::string& dir) {
    const Tensor<double> x = load(dir, "x"), dy = load(dir, "dy");
    Layer<double> layer = Dropout<double>(p);
    Rng rng(0);
    layer.build(sample_shape(x), rng);
    const Pass pass = Pass::training_batch(2, 0, 0, x.dimension(0)).for_layer(0);
    Tensor<double> y, dx;
    layer.forward(x, y, pass);
    layer.backward(x, y, dy, dx, pass);
    save(dir, "y", y);
    save(dir, "dx", dx);
}

// One training pass of `layer` on x<name>, d<name>: saves <prefix>_y, <prefix>_dx, <prefix>_term.
Tensor<double> run_term_layer(Layer<double>& layer, const std::string& dir, const std::string& input,
                              const std::string& prefix) {
    const Tensor<double> x = load(dir, input), dy = load(dir, "d" + input);
    Rng rng(0);
    if (!layer.is_built()) layer.build(sample_shape(x), rng);
    const Pass pass = Pass::training_batch(3, 0, 0, x.dimension(0));
    Tensor<double> y, dx;
    layer.forward(x, y, pass);
    layer.backward(x, y, dy, dx, pass);
    save(dir, prefix + "_y", y);
    save(dir, prefix + "_dx", dx);
    const double term = layer.term_value();
    save(dir, prefix + "_term", as_vector(&term, 1));
    return y;
}

void penalties(const std::string& dir) {
    const Tensor<double> weight = load(dir, "weight"), bias = load(dir, "bias");
    Layer<double> contractive = ContractiveDense<double>(weight.dimension(0), 0.7);
    Rng rng(0);
    contractive.build(sample_shape(load(dir, "x")), rng);
    auto* layer = contractive.get<ContractiveDense<double>>();
    std::copy_n(weight.data(), weight.size(), layer->weight().data());
    std::copy_n(bias.data(), bias.size(), layer->bias().data());
    run_term_layer(contractive, dir, "x", "contractive");
    save(dir, "contractive_grad_weight", as_vector(layer->grad_weight().data(), layer->grad_weight().size()));
    save(dir, "contractive_grad_bias", as_vector(layer->grad_bias().data(), layer->grad_bias().size()));
    Layer<double> kl = KLSparsity<double>(0.2, 1.5);
    run_term_layer(kl, dir, "h", "kl");
    Layer<double> l1 = ActivityL1<double>(0.3);
    run_term_layer(l1, dir, "a", "l1");
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const std::string layer = argc > 1 ? argv[1] : "";
        if ((layer == "BatchNorm" || layer == "BatchNorm2D") && argc == 3) {
            Layer<double> batch_norm_layer = BatchNorm<double>();
            if (layer == "BatchNorm2D") batch_norm_layer = BatchNorm2D<double>();
            batch_norm(batch_norm_layer, argv[2]);
            return 0;
        }
        if (layer == "Dropout" && argc == 4) {
            dropout(std::strtod(argv[2], nullptr), argv[3]);
            return 0;
        }
        if (layer == "Penalties" && argc == 3) {
            penalties(argv[2]);
            return 0;
        }
        std::cerr << "usage: torch_layers BatchNorm|BatchNorm2D DIR  |  torch_layers Dropout P DIR  |  "
                     "torch_layers Penalties DIR\n";
        return 2;
    } catch (const std::exception& error) {
        std::cerr << "torch_layers: " << error.what() << "\n";
        return 1;
    }
}
