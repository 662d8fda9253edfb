// embedding kernels
