// attention kernels
