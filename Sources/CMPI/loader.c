#include "CMPI.h"
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Two views of each call: Open MPI passes handles as pointers, MPICH as ints. Both are called
// through these types so that the arguments are what the library expects in either ABI.
typedef void *H;
static int flavour = 0;
static char version[8192];

static int (*p_init)(int *, char ***);
static int (*p_finalize)(void);
static int (*p_error_string)(int, char *, int *);
static int (*p_get_library_version)(char *, int *);

// Open MPI handles and calls.
static H o_comm_world, o_float, o_double, o_byte, o_sum, o_max, o_errors_return;
static int (*o_comm_rank)(H, int *);
static int (*o_comm_size)(H, int *);
static int (*o_allreduce)(const void *, void *, int, H, H, H);
static int (*o_iallreduce)(const void *, void *, int, H, H, H, H *);
static int (*o_wait)(H *, void *);
static int (*o_test)(H *, int *, void *);
static int (*o_bcast)(void *, int, H, int, H);
static int (*o_barrier)(H);
static int (*o_abort)(H, int);
static int (*o_set_errhandler)(H, H);

// MPICH ABI: handles are these integer constants (mpi.h of MPICH).
enum {
  M_COMM_WORLD = 0x44000000, M_FLOAT = 0x4c00040a, M_DOUBLE = 0x4c00080b, M_BYTE = 0x4c00010d,
  M_SUM = 0x58000003, M_MAX = 0x58000001, M_ERRORS_RETURN = 0x54000001
};
static int (*m_comm_rank)(int, int *);
static int (*m_comm_size)(int, int *);
static int (*m_allreduce)(const void *, void *, int, int, int, int);
static int (*m_iallreduce)(const void *, void *, int, int, int, int, int *);
static int (*m_wait)(int *, void *);
static int (*m_test)(int *, int *, void *);
static int (*m_bcast)(void *, int, int, int, int);
static int (*m_barrier)(int);
static int (*m_abort)(int, int);
static int (*m_set_errhandler)(int, int);

#define O_IN_PLACE ((void *)1)
#define M_IN_PLACE ((void *)-1)
#define M_STATUS_IGNORE ((void *)1)

int itune_mpi_flavour(void) { return flavour; }
const char *itune_mpi_library_version(void) { return version; }

int itune_mpi_load(int prefer_mpich, char *err, size_t errlen) {
  if (flavour) return 1;
  const char *override = getenv("ITUNE_MPI_LIBRARY");
  static const char *const openmpi_first[] = {"libmpi.so.40", "libmpi.so.12", "libmpich.so.12", "libmpi.so", "libmpi.dylib", NULL};
  static const char *const mpich_first[] = {"libmpich.so.12", "libmpi.so.12", "libmpi.so.40", "libmpi.so", "libmpi.dylib", NULL};
  const char *const *names = prefer_mpich ? mpich_first : openmpi_first;
  void *h = NULL;
  const char *last = "not found";
  if (override && *override) {
    // RTLD_GLOBAL: Open MPI's components are plugins that resolve libmpi's symbols.
    h = dlopen(override, RTLD_NOW | RTLD_GLOBAL);
    if (!h) { snprintf(err, errlen, "ITUNE_MPI_LIBRARY=%s: %s", override, dlerror()); return 0; }
  } else {
    for (int i = 0; names[i] && !h; i++) {
      h = dlopen(names[i], RTLD_NOW | RTLD_GLOBAL);
      if (!h) last = dlerror();
    }
    if (!h) {
      snprintf(err, errlen, "could not load libmpi (libmpi.so.40 for Open MPI, libmpi.so.12 for MPICH): %s", last ? last : "unknown error");
      return 0;
    }
  }
#define SYM(var, name) \
  *(void **)(&var) = dlsym(h, name); \
  if (!var) { snprintf(err, errlen, "the MPI library lacks %s", name); return 0; }
  SYM(p_init, "MPI_Init");
  SYM(p_finalize, "MPI_Finalize");
  SYM(p_error_string, "MPI_Error_string");
  SYM(p_get_library_version, "MPI_Get_library_version");
  int len = 0;
  version[0] = 0;
  p_get_library_version(version, &len);  // allowed before MPI_Init (MPI 3.0)
  if (dlsym(h, "ompi_mpi_comm_world")) {
    SYM(o_comm_world, "ompi_mpi_comm_world");
    SYM(o_float, "ompi_mpi_float");
    SYM(o_double, "ompi_mpi_double");
    SYM(o_byte, "ompi_mpi_byte");
    SYM(o_sum, "ompi_mpi_op_sum");
    SYM(o_max, "ompi_mpi_op_max");
    SYM(o_errors_return, "ompi_mpi_errors_return");
    SYM(o_comm_rank, "MPI_Comm_rank");
    SYM(o_comm_size, "MPI_Comm_size");
    SYM(o_allreduce, "MPI_Allreduce");
    SYM(o_iallreduce, "MPI_Iallreduce");
    SYM(o_wait, "MPI_Wait");
    SYM(o_test, "MPI_Test");
    SYM(o_bcast, "MPI_Bcast");
    SYM(o_barrier, "MPI_Barrier");
    SYM(o_abort, "MPI_Abort");
    SYM(o_set_errhandler, "MPI_Comm_set_errhandler");
    flavour = ITUNE_MPI_OPENMPI;
  } else if (strstr(version, "MPICH") || strstr(version, "Intel(R) MPI") || strstr(version, "MVAPICH")) {
    SYM(m_comm_rank, "MPI_Comm_rank");
    SYM(m_comm_size, "MPI_Comm_size");
    SYM(m_allreduce, "MPI_Allreduce");
    SYM(m_iallreduce, "MPI_Iallreduce");
    SYM(m_wait, "MPI_Wait");
    SYM(m_test, "MPI_Test");
    SYM(m_bcast, "MPI_Bcast");
    SYM(m_barrier, "MPI_Barrier");
    SYM(m_abort, "MPI_Abort");
    SYM(m_set_errhandler, "MPI_Comm_set_errhandler");
    flavour = ITUNE_MPI_MPICH;
  } else {
    snprintf(err, errlen, "unknown MPI library (neither Open MPI nor the MPICH ABI): %.200s", version);
    return 0;
  }
#undef SYM
  return 1;
}

static H o_type(int t) { return t == ITUNE_MPI_F64 ? o_double : o_float; }
static H o_op(int op) { return op == ITUNE_MPI_OP_MAX ? o_max : o_sum; }
static int m_type(int t) { return t == ITUNE_MPI_F64 ? M_DOUBLE : M_FLOAT; }
static int m_op(int op) { return op == ITUNE_MPI_OP_MAX ? M_MAX : M_SUM; }

int itune_mpi_init(void) {
  int rc = p_init(NULL, NULL);
  if (rc) return rc;
  return flavour == ITUNE_MPI_OPENMPI ? o_set_errhandler(o_comm_world, o_errors_return)
                                      : m_set_errhandler(M_COMM_WORLD, M_ERRORS_RETURN);
}

int itune_mpi_finalize(void) { return p_finalize(); }

int itune_mpi_rank(int *rank) {
  return flavour == ITUNE_MPI_OPENMPI ? o_comm_rank(o_comm_world, rank) : m_comm_rank(M_COMM_WORLD, rank);
}

int itune_mpi_size(int *size) {
  return flavour == ITUNE_MPI_OPENMPI ? o_comm_size(o_comm_world, size) : m_comm_size(M_COMM_WORLD, size);
}

int itune_mpi_allreduce(void *buffer, int count, int type, int op) {
  if (flavour == ITUNE_MPI_OPENMPI) return o_allreduce(O_IN_PLACE, buffer, count, o_type(type), o_op(op), o_comm_world);
  return m_allreduce(M_IN_PLACE, buffer, count, m_type(type), m_op(op), M_COMM_WORLD);
}

int itune_mpi_iallreduce(void *buffer, int count, int type, int op, itune_mpi_request *request) {
  if (flavour == ITUNE_MPI_OPENMPI)
    return o_iallreduce(O_IN_PLACE, buffer, count, o_type(type), o_op(op), o_comm_world, &request->pointer);
  return m_iallreduce(M_IN_PLACE, buffer, count, m_type(type), m_op(op), M_COMM_WORLD, &request->integer);
}

int itune_mpi_wait(itune_mpi_request *request) {
  // MPI_STATUS_IGNORE is NULL in Open MPI, (MPI_Status *)1 in MPICH.
  if (flavour == ITUNE_MPI_OPENMPI) return o_wait(&request->pointer, NULL);
  return m_wait(&request->integer, M_STATUS_IGNORE);
}

int itune_mpi_test(itune_mpi_request *request, int *done) {
  if (flavour == ITUNE_MPI_OPENMPI) return o_test(&request->pointer, done, NULL);
  return m_test(&request->integer, done, M_STATUS_IGNORE);
}

int itune_mpi_bcast(void *buffer, int bytes, int root) {
  if (flavour == ITUNE_MPI_OPENMPI) return o_bcast(buffer, bytes, o_byte, root, o_comm_world);
  return m_bcast(buffer, bytes, M_BYTE, root, M_COMM_WORLD);
}

int itune_mpi_barrier(void) {
  return flavour == ITUNE_MPI_OPENMPI ? o_barrier(o_comm_world) : m_barrier(M_COMM_WORLD);
}

int itune_mpi_abort(int code) {
  return flavour == ITUNE_MPI_OPENMPI ? o_abort(o_comm_world, code) : m_abort(M_COMM_WORLD, code);
}

void itune_mpi_error_string(int code, char *out, size_t outlen) {
  char buf[1024];  // MPI_MAX_ERROR_STRING: 256 in Open MPI, 1024 in MPICH
  int len = 0;
  buf[0] = 0;
  if (p_error_string && p_error_string(code, buf, &len) == 0 && len > 0) {
    snprintf(out, outlen, "%s", buf);
  } else {
    snprintf(out, outlen, "MPI error %d", code);
  }
}
