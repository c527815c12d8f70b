// Workspace: the scratch memory of one layer call -- im2col columns, stride-phase planes, GEMM
// packing space, per-chunk partial gradients. Nothing in it outlives a call, and the layers of a
// model run one after another, so a model lends one Workspace to all of its layers and it grows
// to what the largest of them needs, instead of each layer keeping its own (for a 128x128x3
// convolutional autoencoder that is about 40 MB less). A layer used on its own keeps one.
#pragma once

#include <memory>
#include <vector>

#include "gemm.hpp"
#include "scratch.hpp"

namespace latent {

template <class T> struct Workspace {
    detail::WorkerBuffers<T> columns;  // im2col / col2im matrices, per worker
    detail::WorkerBuffers<T> phases;   // stride-phase planes of im2col / col2im, per worker
    detail::WorkerBuffers<T> staging;  // other per-worker results (GEMM outputs, shifted planes)
    GemmScratch<T> gemm;
    std::vector<T> partial_weight, partial_bias;  // one slice per chunk, added in chunk order
    std::vector<T> weight_table;                  // weights rearranged for one pass
};

namespace detail {

// A layer's scratch memory: its own Workspace, or one a model lent it (lend()). Copying a layer
// does not copy the loan -- the copy may outlive the model or run beside it -- so a copy uses
// its own Workspace until a model lends it one.
template <class T> class ScratchSpace {
public:
    ScratchSpace() = default;
    ScratchSpace(const ScratchSpace&) : ScratchSpace() {}
    ScratchSpace& operator=(const ScratchSpace&) { return *this; }
    // A move keeps both: the Workspace stays at its address, so loans made from it stay valid.
    ScratchSpace(ScratchSpace&&) noexcept = default;
    ScratchSpace& operator=(ScratchSpace&&) noexcept = default;

    void lend(Workspace<T>* workspace) { lent_ = workspace; }
    // (Safe to call from several threads at once: it only reads, but on a moved-from object.)
    Workspace<T>& get() {
        if (lent_ != nullptr) return *lent_;
        if (!own_) own_ = std::make_unique<Workspace<T>>();  // moved from
        return *own_;
    }

private:
    std::unique_ptr<Workspace<T>> own_ = std::make_unique<Workspace<T>>();  // empty until used
    Workspace<T>* lent_ = nullptr;
};

}  // namespace detail
}  // namespace latent
