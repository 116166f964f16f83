// mamba-ts WebAssembly kernels (AssemblyScript, 128-bit SIMD). Every export takes byte offsets into the
// shared linear memory that the JS side (src/backend/wasm) manages; the module allocates nothing itself.
// Each kernel computes one slice of its output ([start, end) of rows/channels/heads) so that a pool of
// workers sharing the memory can split the work.
export * from './linear';
export * from './linear_q8';
export * from './linear_q4';
export * from './bandwidth';
export * from './scan';
export * from './ssd_chunked';
export * from './conv';
export * from './norm';
export * from './mamba1_step';
export * from './mamba2_step';
export * from './panel';
export * from './gemm';
export * from './gemm_q8';
export * from './scan_train';
export * from './conv_train';
export * from './transpose';
export * from './attention';
export * from './argmax';
export * from './linear_multi';
export * from './step_out';
export * from './gemv_variants';
export * from './attn_layer';
export * from './stack';
