// Instruction datasets: formats, templates, masking, packing.
