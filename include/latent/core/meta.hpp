// The one idiom for "does this type have member X": is_detected<Op, Args...>, where Op is an
// alias template naming the expression (the detection idiom of the Library Fundamentals TS).
//
//   template <class L> using build_op = decltype(std::declval<L&>().build(...));
//   if constexpr (detail::is_detected<build_op, L>) layer.build(...);
//
// Layers, losses, optimizers and callbacks are plain classes with a few required members and
// some optional ones; the type-erasing wrappers use this to call an optional member or fall back.
#pragma once

#include <type_traits>
#include <utility>

namespace latent {
namespace detail {

template <class Always, template <class...> class Op, class... Args> struct detector : std::false_type {};
template <template <class...> class Op, class... Args>
struct detector<std::void_t<Op<Args...>>, Op, Args...> : std::true_type {};

template <template <class...> class Op, class... Args>
constexpr bool is_detected = detector<void, Op, Args...>::value;

// Members that layers, losses, optimizers and callbacks share.
template <class X> using config_op = decltype(std::declval<const X&>().config());


}  // namespace detail
}  // namespace latent
