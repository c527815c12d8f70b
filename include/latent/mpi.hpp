// latent/mpi.hpp: a Communicator (core/communicator.hpp) over MPI, for fit() on several processes.
// The one header of latent that needs MPI: include it only in programs built with an MPI library
// (CMake: find_package(MPI) and link MPI::MPI_CXX, or latent's build-tree target latent::mpi).
// It uses MPI's C interface only (the C++ bindings are deprecated and left out).
//
//   MPI_Init(&argc, &argv);
//   {
//       latent::FitOptions<float> options;
//       options.communicator = latent::mpi_communicator();   // MPI_COMM_WORLD
//       options.gradient_chunks = 4;                         // runs on 1, 2 or 4 processes
//       latent::fit(model, data, data, loss, optimizer, options);
//   }                                                        // communicators gone before
//   MPI_Finalize();                                          // MPI_Finalize
#pragma once

#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>

#include <climits>
#include <cstddef>
#include <memory>
#include <string>

#include "core/communicator.hpp"
#include "core/errors.hpp"

namespace latent {
namespace detail {

inline void check_mpi(int code, const char* call) {
    if (code == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING];
    int length = 0;
    MPI_Error_string(code, text, &length);
    throw IoError(std::string("MPI: ") + call + " failed: " + std::string(text, static_cast<std::size_t>(length)));
}

// MPI counts are ints: one exchange moves at most INT_MAX bytes (a model of 2^31 / 4 * ranks
// float parameters).
inline int mpi_byte_count(std::size_t bytes) {
    if (bytes > static_cast<std::size_t>(INT_MAX))
        throw ArgumentError("MPI: an exchange of " + std::to_string(bytes) + " bytes per process exceeds MPI's int "
                            "counts; train over more processes or a smaller model");
    return static_cast<int>(bytes);
}

}  // namespace detail

// A Communicator over the processes of `comm`. It works on a duplicate of `comm`, so latent's
// exchanges never mix with the program's own messages, whose errors raise latent::IoError
// instead of aborting the program. Call after MPI_Init; let every copy go before MPI_Finalize.
inline Communicator mpi_communicator(MPI_Comm comm = MPI_COMM_WORLD) {
    const auto own = std::shared_ptr<MPI_Comm>(new MPI_Comm(MPI_COMM_NULL), [](MPI_Comm* duplicate) {
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (!finalized && *duplicate != MPI_COMM_NULL) MPI_Comm_free(duplicate);
        delete duplicate;
    });
    detail::check_mpi(MPI_Comm_dup(comm, own.get()), "MPI_Comm_dup");
    detail::check_mpi(MPI_Comm_set_errhandler(*own, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
    Communicator communicator;
    detail::check_mpi(MPI_Comm_rank(*own, &communicator.rank), "MPI_Comm_rank");
    detail::check_mpi(MPI_Comm_size(*own, &communicator.ranks), "MPI_Comm_size");
    communicator.all_gather = [own](const void* send, std::size_t bytes, void* receive) {
        const int count = detail::mpi_byte_count(bytes);
        detail::check_mpi(MPI_Allgather(send, count, MPI_BYTE, receive, count, MPI_BYTE, *own), "MPI_Allgather");
    };
    communicator.all_to_all = [own](const void* send, std::size_t bytes, void* receive) {
        const int count = detail::mpi_byte_count(bytes);
        detail::check_mpi(MPI_Alltoall(send, count, MPI_BYTE, receive, count, MPI_BYTE, *own), "MPI_Alltoall");
    };
    return communicator;
}

}  // namespace latent
