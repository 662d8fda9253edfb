// Work-group reductions shared by every kernel family: KernelSources puts this file in front
// of each family's source. Each reduces one value per work-item in local memory in a fixed
// tree order (the same bits on every run) and returns the result to every work-item.

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
