// OpenCL and CLBlast, reached through function pointers filled at run time by
// itune_opencl_load() / itune_clblast_load(). Nothing links against libOpenCL or libclblast,
// so a binary built with this module starts on a machine without them and can fall back to
// the CPU path. The pointer types come from the real headers through __typeof__, so every
// signature is exactly the vendor's.
#ifndef ITUNE_COPENCL_H
#define ITUNE_COPENCL_H

#define CL_TARGET_OPENCL_VERSION 120
#define CL_USE_DEPRECATED_OPENCL_1_2_APIS
#include <CL/cl.h>
#include <clblast_c.h>
#include <stddef.h>

#define ITUNE_CL_FUNCTIONS(X) \
  X(clGetPlatformIDs) X(clGetPlatformInfo) X(clGetDeviceIDs) X(clGetDeviceInfo) \
  X(clCreateContext) X(clReleaseContext) X(clCreateCommandQueue) X(clReleaseCommandQueue) \
  X(clCreateBuffer) X(clReleaseMemObject) X(clEnqueueReadBuffer) X(clEnqueueWriteBuffer) \
  X(clEnqueueCopyBuffer) X(clEnqueueFillBuffer) X(clCreateProgramWithSource) \
  X(clCreateProgramWithBinary) X(clBuildProgram) X(clGetProgramBuildInfo) X(clGetProgramInfo) \
  X(clReleaseProgram) X(clCreateKernel) X(clReleaseKernel) X(clSetKernelArg) \
  X(clEnqueueNDRangeKernel) X(clFinish) X(clFlush) X(clGetKernelWorkGroupInfo) \
  X(clWaitForEvents) X(clReleaseEvent) X(clGetEventProfilingInfo)

#define ITUNE_CLBLAST_FUNCTIONS(X) \
  X(CLBlastSgemm) X(CLBlastSgemmStridedBatched) X(CLBlastSgemmWithTempBuffer) \
  X(CLBlastSGemmTempBufferSize) X(CLBlastClearCache) X(CLBlastOverrideParameters)

#define ITUNE_DECLARE_POINTER(name) extern __typeof__(&name) itune_##name;
ITUNE_CL_FUNCTIONS(ITUNE_DECLARE_POINTER)
ITUNE_CLBLAST_FUNCTIONS(ITUNE_DECLARE_POINTER)
#undef ITUNE_DECLARE_POINTER

/// Loads the OpenCL ICD loader. Returns 1 on success; on failure writes why into err.
int itune_opencl_load(char *err, size_t errlen);
/// Loads CLBlast (after OpenCL). Returns 1 on success; on failure writes why into err.
int itune_clblast_load(char *err, size_t errlen);

#endif
