// LayerRegistry<T>: how a model file's layer type names turn back into layers. It knows every
// built-in layer; register your own layer types with add<MyLayer<T>>() before loading a model
// that uses them. A registry is a plain value passed to load() -- there is no global registry.
#pragma once

#include <functional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "activations.hpp"
#include "config.hpp"
#include "conv2d.hpp"
#include "conv_transpose2d.hpp"
#include "dense.hpp"
#include "layer.hpp"
#include "max_pool2d.hpp"
#include "reshape.hpp"
#include "upsample2d.hpp"

namespace latent {
namespace detail {

template <class L, class = void> struct has_from_config : std::false_type {};
template <class L>
struct has_from_config<L, std::void_t<decltype(L::from_config(std::declval<const Config&>()))>> : std::true_type {};

}  // namespace detail

template <class T = float> class LayerRegistry {
public:
    using Factory = std::function<Layer<T>(const Config&)>;

    // A registry of every layer type latent ships.
    static LayerRegistry builtin() {
        LayerRegistry registry;
        registry.add<Dense<T>>()
            .template add<Conv2D<T>>()
            .template add<ConvTranspose2D<T>>()
            .template add<MaxPool2D<T>>()
            .template add<UpSample2D<T>>()
            .template add<Flatten<T>>()
            .template add<Reshape<T>>()
            .template add<ReLU<T>>()
            .template add<LeakyReLU<T>>()
            .template add<Sigmoid<T>>()
            .template add<Tanh<T>>()
            .template add<Softplus<T>>()
            .template add<Identity<T>>();
        return registry;
    }

    // Registers L under L::type_name, built by L::from_config(config) or, for layers without a
    // configuration, by L's default constructor. A later registration of the same name wins.
    template <class L> LayerRegistry& add() {
        Factory factory = [](const Config& config) -> Layer<T> {
            if constexpr (detail::has_from_config<L>::value) return L::from_config(config);
            else return L();
        };
        for (auto& entry : factories_)
            if (entry.first == L::type_name) {
                entry.second = std::move(factory);
                return *this;
            }
        factories_.emplace_back(L::type_name, std::move(factory));
        return *this;
    }

    bool contains(const std::string& type) const {
        for (const auto& entry : factories_)
            if (entry.first == type) return true;
        return false;
    }

    Layer<T> create(const std::string& type, const Config& config) const {
        for (const auto& entry : factories_)
            if (entry.first == type) {
                try {
                    return entry.second(config);
                } catch (const FormatError&) {
                    throw;
                } catch (const Error& error) {  // invalid arguments read from a file
                    throw FormatError("layer " + type + " with config '" + config.str() + "': " + error.what());
                }
            }
        throw FormatError("unknown layer type '" + type +
                          "' (a layer of your own? register it: registry.add<" + type + "<T>>())");
    }

private:
    std::vector<std::pair<std::string, Factory>> factories_;
};

}  // namespace latent
