// Registry<T>: how the type names in a model file or a configuration turn back into layers,
// optimizers and losses. builtin() knows every type latent ships; add your own before loading a
// file that names them:
//   auto registry = Registry<float>::builtin();
//   registry.add_layer<Scale<float>>().add_optimizer<MyOptimizer<float>>();
//   auto model = Autoencoder<float>::load("model.latent", progress, registry);
// A registry is a plain value passed to load() -- there is no global registry.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "../core/meta.hpp"
#include "../layers/activations.hpp"
#include "../layers/batch_norm.hpp"
#include "../layers/config.hpp"
#include "../layers/contractive_dense.hpp"
#include "../layers/conv2d.hpp"
#include "../layers/conv_transpose2d.hpp"
#include "../layers/dense.hpp"
#include "../layers/dropout.hpp"
#include "../layers/gaussian_sample.hpp"
#include "../layers/layer.hpp"
#include "../layers/max_pool2d.hpp"
#include "../layers/penalties.hpp"
#include "../layers/reshape.hpp"
#include "../layers/upsample2d.hpp"
#include "../losses/loss.hpp"
#include "../optimizers/optimizer.hpp"

namespace latent {
namespace detail {

template <class X> using from_config_op = decltype(X::from_config(std::declval<const Config&>()));

// Named factories of one kind of product (Layer<T>, Optimizer<T> or Loss<T>).
template <class Product> class Factories {
public:
    // Registers X under X::type_name, built by X::from_config(config) or, without one, by X's
    // default constructor. A later registration of the same name wins.
    template <class X> void add() {
        Factory factory = [](const Config& config) -> Product {
            if constexpr (is_detected<from_config_op, X>) return X::from_config(config);
            else return X();
        };
        for (auto& entry : factories_)
            if (entry.first == X::type_name) {
                entry.second = std::move(factory);
                return;
            }
        factories_.emplace_back(X::type_name, std::move(factory));
    }

    bool contains(const std::string& type) const { return find(type) != nullptr; }

    // `kind` names the product in messages ("layer", "optimizer", "loss").
    Product create(const std::string& type, const Config& config, const char* kind, const char* how_to_add) const {
        const Factory* factory = find(type);
        if (factory == nullptr)
            throw FormatError("unknown " + std::string(kind) + " type '" + type + "' (one of your own? register it: registry." +
                              how_to_add + "<" + type + "<T>>())");
        try {
            return (*factory)(config);
        } catch (const FormatError&) {
            throw;
        } catch (const Error& error) {  // invalid arguments read from a file
            throw FormatError(std::string(kind) + " " + type + " with config '" + config.str() + "': " + error.what());
        }
    }

private:
    using Factory = std::function<Product(const Config&)>;
    const Factory* find(const std::string& type) const {
        for (const auto& entry : factories_)
            if (entry.first == type) return &entry.second;
        return nullptr;
    }
    std::vector<std::pair<std::string, Factory>> factories_;
};

}  // namespace detail

template <class T = float> class Registry {
public:
    // A registry of every layer, optimizer and loss latent ships.
    static Registry builtin() {
        Registry registry;
        registry.add_layer<Dense<T>>()
            .template add_layer<Conv2D<T>>()
            .template add_layer<ConvTranspose2D<T>>()
            .template add_layer<MaxPool2D<T>>()
            .template add_layer<UpSample2D<T>>()
            .template add_layer<Flatten<T>>()
            .template add_layer<Reshape<T>>()
            .template add_layer<ReLU<T>>()
            .template add_layer<LeakyReLU<T>>()
            .template add_layer<Sigmoid<T>>()
            .template add_layer<Tanh<T>>()
            .template add_layer<Softplus<T>>()
            .template add_layer<Identity<T>>()
            .template add_layer<Dropout<T>>()
            .template add_layer<AdditiveNoise<T>>()
            .template add_layer<BatchNorm<T>>()
            .template add_layer<BatchNorm2D<T>>()
            .template add_layer<ActivityL1<T>>()
            .template add_layer<KLSparsity<T>>()
            .template add_layer<ContractiveDense<T>>()
            .template add_layer<GaussianSample<T>>();
        registry.add_optimizer<SGD<T>>()
            .template add_optimizer<Adam<T>>()
            .template add_optimizer<AdamW<T>>()
            .template add_optimizer<RMSprop<T>>()
            .template add_optimizer<Adadelta<T>>();
        registry.add_loss<MeanSquaredError<T>>()
            .template add_loss<SumSquaredError<T>>()
            .template add_loss<BinaryCrossEntropy<T>>()
            .template add_loss<L1<T>>();
        return registry;
    }

    template <class L> Registry& add_layer() {
        layers_.template add<L>();
        return *this;
    }
    template <class O> Registry& add_optimizer() {
        optimizers_.template add<O>();
        return *this;
    }
    template <class L> Registry& add_loss() {
        losses_.template add<L>();
        return *this;
    }

    bool has_layer(const std::string& type) const { return layers_.contains(type); }
    bool has_optimizer(const std::string& type) const { return optimizers_.contains(type); }
    bool has_loss(const std::string& type) const { return losses_.contains(type); }

    // FormatError for an unknown type or a configuration it refuses.
    Layer<T> create_layer(const std::string& type, const Config& config) const {
        return layers_.create(type, config, "layer", "add_layer");
    }
    Optimizer<T> create_optimizer(const std::string& type, const Config& config) const {
        return optimizers_.create(type, config, "optimizer", "add_optimizer");
    }
    Loss<T> create_loss(const std::string& type, const Config& config) const {
        return losses_.create(type, config, "loss", "add_loss");
    }

private:
    detail::Factories<Layer<T>> layers_;
    detail::Factories<Optimizer<T>> optimizers_;
    detail::Factories<Loss<T>> losses_;
};

}  // namespace latent
