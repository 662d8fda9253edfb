// The few MPI calls itune-gpu uses, behind our own declarations: libmpi is opened at run time
// (dlopen), never linked, so the binaries start on machines without MPI and only a run under an
// MPI launcher needs the library. Open MPI's handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM…) are
// addresses of global symbols (ompi_mpi_comm_world…); MPICH's ABI (MPICH, Intel MPI, MVAPICH)
// uses integer constants. The loader finds which one the library is and calls accordingly.
#ifndef ITUNE_CMPI_H
#define ITUNE_CMPI_H
#include <stddef.h>
#include <stdint.h>

/// A non-blocking operation in flight (an Open MPI request pointer or an MPICH request id).
typedef struct {
  void *pointer;
  int integer;
} itune_mpi_request;

enum { ITUNE_MPI_OPENMPI = 1, ITUNE_MPI_MPICH = 2 };
enum { ITUNE_MPI_F32 = 0, ITUNE_MPI_F64 = 1 };
enum { ITUNE_MPI_OP_SUM = 0, ITUNE_MPI_OP_MAX = 1 };

/// Opens the library (ITUNE_MPI_LIBRARY, else libmpi.so.40, libmpi.so.12, libmpich.so.12,
/// libmpi.so; the MPICH names first when prefer_mpich is set, as under MPICH's Hydra
/// launcher, so that a machine with both libraries loads the launcher's) and resolves every
/// call. 1 on success; 0 with the reason in err.
int itune_mpi_load(int prefer_mpich, char *err, size_t errlen);
/// ITUNE_MPI_OPENMPI or ITUNE_MPI_MPICH once loaded; 0 before.
int itune_mpi_flavour(void);
/// The library's own version string (MPI_Get_library_version), once loaded.
const char *itune_mpi_library_version(void);
/// MPI_Init, then errors on MPI_COMM_WORLD return codes instead of aborting.
int itune_mpi_init(void);
int itune_mpi_finalize(void);
int itune_mpi_rank(int *rank);
int itune_mpi_size(int *size);
/// In-place allreduce of count values of type (ITUNE_MPI_F32/F64) with op over MPI_COMM_WORLD.
int itune_mpi_allreduce(void *buffer, int count, int type, int op);
/// MPI_Iallreduce in place; complete it with itune_mpi_wait.
int itune_mpi_iallreduce(void *buffer, int count, int type, int op, itune_mpi_request *request);
int itune_mpi_wait(itune_mpi_request *request);
/// MPI_Test: *done becomes 1 once the operation has completed (then the request is freed).
int itune_mpi_test(itune_mpi_request *request, int *done);
int itune_mpi_bcast(void *buffer, int bytes, int root);
int itune_mpi_barrier(void);
/// MPI_Abort(MPI_COMM_WORLD, code): ends every rank.
int itune_mpi_abort(int code);
/// The library's message for an error code.
void itune_mpi_error_string(int code, char *out, size_t outlen);

#endif
