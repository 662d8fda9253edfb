// rope kernels
