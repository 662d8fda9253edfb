#include "COpenCL.h"
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#define ITUNE_DEFINE_POINTER(name) __typeof__(&name) itune_##name = NULL;
ITUNE_CL_FUNCTIONS(ITUNE_DEFINE_POINTER)
ITUNE_CLBLAST_FUNCTIONS(ITUNE_DEFINE_POINTER)

static void *open_first(const char *const *names, const char *env, char *err, size_t errlen) {
  const char *override = getenv(env);
  if (override && *override) {
    void *h = dlopen(override, RTLD_NOW | RTLD_GLOBAL);
    if (h) return h;
    snprintf(err, errlen, "%s=%s: %s", env, override, dlerror());
    return NULL;
  }
  const char *last = "not found";
  for (int i = 0; names[i]; i++) {
    void *h = dlopen(names[i], RTLD_NOW | RTLD_GLOBAL);
    if (h) return h;
    last = dlerror();
  }
  snprintf(err, errlen, "could not load %s: %s", names[0], last ? last : "unknown error");
  return NULL;
}

int itune_opencl_load(char *err, size_t errlen) {
  static int loaded = 0;
  if (loaded) return 1;
  static const char *const names[] = {"libOpenCL.so.1", "libOpenCL.so", "/System/Library/Frameworks/OpenCL.framework/OpenCL", NULL};
  void *h = open_first(names, "ITUNE_OPENCL_LIBRARY", err, errlen);
  if (!h) return 0;
#define LOAD(name) \
  itune_##name = (__typeof__(&name))dlsym(h, #name); \
  if (!itune_##name) { snprintf(err, errlen, "OpenCL library lacks %s", #name); return 0; }
  ITUNE_CL_FUNCTIONS(LOAD)
#undef LOAD
  loaded = 1;
  return 1;
}

int itune_clblast_load(char *err, size_t errlen) {
  static int loaded = 0;
  if (loaded) return 1;
  static const char *const names[] = {"libclblast.so.1", "libclblast.so", "libclblast.dylib", NULL};
  void *h = open_first(names, "ITUNE_CLBLAST_LIBRARY", err, errlen);
  if (!h) return 0;
#define LOAD(name) \
  itune_##name = (__typeof__(&name))dlsym(h, #name); \
  if (!itune_##name) { snprintf(err, errlen, "CLBlast library lacks %s", #name); return 0; }
  ITUNE_CLBLAST_FUNCTIONS(LOAD)
#undef LOAD
  loaded = 1;
  return 1;
}
