// Work-group reductions shared by every kernel family: KernelSources puts this file in front
// of each family's source. Each reduces one value per work-item in local memory in a fixed
// tree order (the same bits on every run) and returns the result to every work-item.
//
// Work-group sizes the host picks for every family, tunable per device (KernelTuning): the
// kernels read get_local_size(0), so these only reach the host's choice; each is a cap that the
// host lowers to a power of two within the device's maximum work-group size.
//   REDUCE_GROUP_MAX    one group per long row (softmax, norms, loss) or per chunk of a sum
//   REDUCE_GROUP_SHORT  one group per short row, where a big group would mostly idle
//   ELEMENTWISE_GROUP   elementwise kernels that set a group size (AdamW, dropout, RoPE)
#ifndef REDUCE_GROUP_MAX
#define REDUCE_GROUP_MAX 256
#endif
#ifndef REDUCE_GROUP_SHORT
#define REDUCE_GROUP_SHORT 64
#endif
#ifndef ELEMENTWISE_GROUP
#define ELEMENTWISE_GROUP 64
#endif

float group_reduce_max(__local float* s, float v) {
  int l = get_local_id(0), ls = get_local_size(0);
  s[l] = v;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int k = ls / 2; k > 0; k >>= 1) {
    if (l < k) s[l] = fmax(s[l], s[l + k]);
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  float r = s[0];
  barrier(CLK_LOCAL_MEM_FENCE);
  return r;
}

float group_reduce_sum(__local float* s, float v) {
  int l = get_local_id(0), ls = get_local_size(0);
  s[l] = v;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int k = ls / 2; k > 0; k >>= 1) {
    if (l < k) s[l] += s[l + k];
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  float r = s[0];
  barrier(CLK_LOCAL_MEM_FENCE);
  return r;
}
