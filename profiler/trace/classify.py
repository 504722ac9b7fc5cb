"""What each op and kernel is: one of the breakdown categories of docs/DESIGN.md.

Kernels are classified by the op that launched them first (ATen op names are a stable API), and by their own
name only when no launching op says anything (torch.compile's triton kernels, CUDA graphs, NCCL's threads).
Kernel names change with every library release (nvjet, cutlass, flash, triton ...), so name patterns are the
fallback, and the time they could not classify is reported, not hidden.
"""

import re
from enum import IntEnum


class Category(IntEnum):
    """The breakdown's exclusive categories in docs/DESIGN.md's order: the value is a row of the per-step arrays
    (Breakdown.us), the name in lower case the report's key."""

    MATMUL = 0
    OTHER_COMPUTE = 1
    MEMORY = 2
    COMMUNICATION = 3
    DATA_LOADING = 4
    HOST_OVERHEAD = 5
    IDLE = 6
    UNRECORDED = 7  # device work the trace lost (dropped kernels, a CUDA graph replayed without its kernels)

    @property
    def key(self) -> str:
        return self.name.lower()


CATEGORIES = tuple(c.key for c in Category)
MATMUL, OTHER_COMPUTE, MEMORY, COMMUNICATION, DATA_LOADING, HOST_OVERHEAD, IDLE, UNRECORDED = Category
# categories that an op passes down to everything inside it (a copy inside a matmul op is the matmul's)
INHERITED = (MATMUL, MEMORY, COMMUNICATION, DATA_LOADING)

# the GEMM ops by name (plain, batched, scaled fp8, integer, grouped MoE): matmul time here, and their FLOPs are
# counted from their shapes (flops.FLOP_OPS)
GEMM_OPS = r"mm|addmm|bmm|baddbmm|addbmm|_scaled_mm|_scaled_mm_v2|_int_mm|_grouped_mm|_scaled_grouped_mm"
MATMUL_OP = re.compile(
    rf"^aten::({GEMM_OPS}"
    r"|conv\w*|_convolution\w*|cudnn_convolution\w*|mkldnn_convolution\w*|miopen_convolution\w*"
    r"|_scaled_dot_product_(flash|efficient|cudnn|fused)_attention\w*|_flash_attention\w*|_efficient_attention\w*)$"
)
MEMORY_OP = re.compile(
    r"^aten::(copy_|_copy_from|_copy_from_and_resize|to|_to_copy|contiguous|clone|cat|_cat|stack|fill_|zero_|zeros"
    r"|zeros_like|ones|ones_like|full|full_like|new_zeros|new_full|pin_memory|_pin_memory)$"
)
# collectives by library prefix (NCCL, RCCL, gloo, MPI, UCC, c10d and its functional form, symmetric memory,
# vLLM's and TensorRT-LLM's custom all-reduce) or by the collective's own name in any namespace
COMMUNICATION_OP = re.compile(
    r"^(nccl|rccl|gloo|mpi|ucc|hccl|xccl):|^_?c10d(_functional)?::|^symm_mem::|^record_param_comms$|^ProcessGroup"
    r"|^(?!aten::|fsdp::)\w+::(\w*_)?(all_?reduce|all_?gather|reduce_?scatter|all_?to_?all|broadcast)\w*$",
    re.IGNORECASE)  # FSDP's spans hold its copies and views as well as the collective: they are not one
# FSDP2's own copies around its collectives (the flat buffer's copy-in, the split copy-out, the gradients' chunk-cat)
FSDP_COPY_OP = re.compile(r"^fsdp::(all_gather_copy_in|split_with_sizes_copy|chunk_cat|\w*copy\w*)$")
FUSED_ATTENTION = re.compile(
    r"^aten::_?(scaled_dot_product_(flash|efficient|cudnn)_attention|flash_attention|efficient_attention)")
COMPILED_REGION = re.compile(r"^Torch-Compiled Region")  # one per call of a torch.compile'd frame
SOFTMAX = re.compile(r"^aten::_?(softmax|safe_softmax)$")
OPTIMIZER_STEP = re.compile(r"^Optimizer\.step#")
# one autograd node run by the backward: the engine's span (torch >= 1.10) or the node itself (MmBackward0,
# CudnnConvolutionBackward, CheckpointFunctionBackward)
BACKWARD_NODE = re.compile(r"^autograd::engine::evaluate_function: |^\w+Backward\d*$")
BACKWARD_OP = re.compile(r"^aten::\w*_backward")  # a gradient kernel, wherever it was called from
# ops only a forward pass calls: inside a backward node they are the forward run again (activation checkpointing;
# a backward formula calls mm, bmm and the *_backward kernels, never these)
FORWARD_OP = re.compile(r"^aten::(linear|matmul|einsum|conv[123]d|conv_transpose[123]d|scaled_dot_product_attention"
                        r"|_scaled_dot_product_\w+_attention(_for_cpu)?|layer_norm|rms_norm|group_norm|embedding)$")
# torch.compile: the runtime around a compiled region (guards, wrappers) is framework overhead; the code that
# inductor generated for one graph runs inside the graph's annotation, and on a CPU its C++ kernels are
# recorded as ops only under torch._inductor.config.cpp.enable_kernel_profile, so the annotation's own time
# is those kernels' compute; where they were recorded, it is the Python wrapper's overhead
COMPILE_RUNTIME_OP = re.compile(
    r"^(TorchDynamo Cache Lookup|Torch-Compiled Region|Pregraph bytecode|AOTDispatcher Runtime Wrapper)")
COMPILED_GRAPH = re.compile(r"^## Call CompiledFxGraph")
GENERATED_KERNEL_OP = re.compile(r"cpp_fused_|^triton_")  # inductor's kernels, where recorded as ops
# the profiler's span around each `next()` of a DataLoader (or a DataPipe): one per batch, in every torch version
DATALOADER_SPAN = re.compile(r"^enumerate\(Data(Loader|Pipe)\)#")
DATA_LOADING_OP = re.compile(rf"{DATALOADER_SPAN.pattern}|load_batch|wait_for_batch|data_?load", re.IGNORECASE)
# ops that only describe or allocate tensors: their time is framework overhead, never compute
METADATA_OP = re.compile(
    r"^(aten::(view|_view\w*|reshape|_reshape_alias|as_strided|transpose|t|permute|expand|expand_as|view_as|slice"
    r"|select|unsqueeze|squeeze|detach|alias|empty|empty_like|empty_strided|resize_|_unsafe_view|split"
    r"|split_with_sizes|narrow|lift_fresh|unbind|chunk|resolve_conj|resolve_neg|set_|item|_local_scalar_dense"
    r"|is_nonzero|result_type|broadcast_tensors|flatten|unflatten|numpy_T|_has_compatible_shallow_copy_type)|detach)$"
)
# ops that do no work of their own: autograd's nodes and engine (the ATen ops inside them do it), and the
# conversions that return their input when there is nothing to convert (when they copy, a copy_ inside does)
DISPATCH_ONLY_OP = re.compile(r"^((torch::)?autograd::|\w+Backward\d*$)|^aten::(to|contiguous|type_as)$")

# Python functions (with_stack / python tracer) that prepare data inside the step: decoding, image and text
# processing, datasets and collation. Their time is data loading wherever the trace records them
DATA_PREP_PYTHON = re.compile(
    r"(^|/)(PIL|av|cv2|torchvision/(transforms|io|datasets)|torchaudio|datasets|torch/utils/data)/"
    r"|(image_processing|feature_extraction|tokenization)\w*\.py\("
    r"|\): (preprocess|read_video\w*|decode_video\w*|load_image\w*|load_video\w*|collate\w*)$")
# a Python frame that blocks (a background thread's wait, a sleep): no host work
WAITING_PYTHON = re.compile(r"(\): |<built-in (method|function) |^time\.)(wait|sleep|acquire|join|select|poll)\b")
# runtime calls that stall the host on the device, and allocator calls (each may synchronize too)
SYNC_CALL = re.compile(r"^(cuda|hip|cu|hsa|mtia|xpu)\w*Synchroni[sz]e|^(cuda|hip)Memcpy(2D|3D)?$|^cudaStreamWaitEvent$")
ALLOCATOR_CALL = re.compile(r"^(cuda|hip|cu)(Mem)?(Free|Malloc|Alloc)\w*$|^hipExtMallocWithFlags$")


# runtime calls that put work on the device, one device event each (a graph launch: the graph's kernels) where the
# trace recorded it: CUDA's and HIP's kernel launches, graph launches, XPU's (Unified Runtime, Level Zero, PI)
KERNEL_LAUNCH_CALL = re.compile(
    r"^(cuda|cu|hip|hipExt|hipModule|hipExtModule)Launch(Cooperative)?Kernel\w*$|^(cuda|hip)GraphLaunch\w*$"
    r"|^(urEnqueueKernelLaunch|zeCommandListAppendLaunchKernel|piEnqueueKernelLaunch)\w*$")
GRAPH_LAUNCH_CALL = re.compile(r"^(cuda|hip)GraphLaunch\w*$")
# a stream capture's bounds: what is launched between them is recorded into a graph, not run
CAPTURE_BEGIN_CALL = re.compile(r"^(cuda|hip)StreamBeginCapture\w*$")
CAPTURE_END_CALL = re.compile(r"^(cuda|hip)StreamEndCapture\w*$")


def stall_call(name: str) -> bool:
    """A runtime call that stalls the host on the device (a sync) or may (an allocator call)."""
    return bool(SYNC_CALL.match(name) or ALLOCATOR_CALL.match(name))

# collective kernels: NCCL / RCCL, symmetric-memory and custom all-reduces, and expert-parallel all-to-all kernels
# by their libraries' names (DeepEP and its forks: internode:: / intranode:: dispatch, combine, notify_dispatch,
# cached_notify, in any namespace), NVSHMEM, point-to-point
COMMUNICATION_KERNEL = re.compile(
    r"nccl|rccl|multimem_|all_?reduce|all_?gather|reduce_?scatter|all_?to_?all|cross_device_reduce"
    r"|(internode|intranode)\w*::\w*(dispatch|combine|notify)|deep_?ep|\bnotify_dispatch|\bcached_notify|nvshmem"
    r"|send_?recv|\bxccl|\bhccl|\bhcom_|oneccl", re.IGNORECASE)
MATMUL_KERNEL = re.compile(
    r"(?<!fb)gemm|cutlass|nvjet|xmma|cublas|wgmma|hmma|s884|s1688|h884|h1688|h16816|s16816|i8816|sm\d+_xmma|_mm_"
    r"|triton_tem|(^|_)(Quant)?(Batch|Grouped)?MatMul"  # Ascend's AI-core tasks: MatMulV2, BatchMatMulV3
    r"|^bmm_|_bmm_|grouped_?mm|moe_?mm"
    r"|conv(olution|olve|_|2d|3d)|implicit_gemm|wgrad|dgrad|fprop|flash_?(fwd|bwd|attn)|flash::|fmha|attention|sdpa",
    re.IGNORECASE,
)


def op_category(name: str) -> int | None:
    """The category an op's own time belongs to, from its name; None when the name says nothing."""
    if MATMUL_OP.match(name):
        return MATMUL
    if COMMUNICATION_OP.search(name):
        return COMMUNICATION
    if DATA_LOADING_OP.search(name):
        return DATA_LOADING
    if MEMORY_OP.match(name) or FSDP_COPY_OP.match(name):
        return MEMORY
    if METADATA_OP.match(name) or COMPILE_RUNTIME_OP.match(name):
        return HOST_OVERHEAD
    if COMPILED_GRAPH.match(name):
        return OTHER_COMPUTE
    return None


def kernel_category_by_name(name: str) -> int | None:
    """A kernel's category from its own name: the fallback when its launching op says nothing."""
    if COMMUNICATION_KERNEL.search(name):
        return COMMUNICATION
    if MATMUL_KERNEL.search(name):
        return MATMUL
    return None

# --- kernel names that say the precision (kept together, a test per family) ---
# matmul and convolution kernels that run float32 on the SIMT cores: cuBLAS' sgemm families (volta_, turing_,
# ampere_, maxwell_sgemm; cutlass' simt_sgemm), cuDNN's scudnn families, xmma's f32 kernels on FFMA, and
# cuDNN / cuBLAS kernels templated on float (wgrad / dgrad engines, winograd, explicit / implicit convolve,
# gemv, their index types first)
FP32_MATMUL_KERNEL = re.compile(
    r"sgemm|scudnn|f32f32\w*_ffma|(cudnn::\S*|winograd\w*|convolve\w*|gemv\w*|gemm\w*|_engine)<((int|long), )*float\b")
# tensor-core kernels: never precision, whatever else the name says (half / bf16 / tf32 HMMA, Hopper's wgmma,
# AMD's MFMA and xdlops, cutlass tensorop, the mma shapes in cuBLAS names)
TENSOR_CORE_KERNEL = re.compile(
    r"hmma|tensorop|wgmma|mfma|xdlops|nvjet|tf32|bf16|f16|fp16|s1688|s16816|h884|h1688|h16816|i8816|_mma_",
    re.IGNORECASE)


# narrow formats by the names of the ops and kernels that run them: fp8 (e4m3 / e5m2, MX or block-scaled; a GEMM of
# fp8 by fp4 runs at fp8's rate) and fp4 (e2m1: NVFP4, MXFP4)
FP8_NAME = re.compile(r"fp8|float8|e4m3|e5m2|mxf8|qmma|_scaled_(grouped_)?mm", re.IGNORECASE)
FP4_NAME = re.compile(r"fp4|float4|e2m1|mxf4", re.IGNORECASE)


def narrow_precision(name: str) -> str | None:
    """"float8" or "float4" where an op's or a matmul kernel's name says it runs in that format, else None."""
    if FP8_NAME.search(name):
        return "float8"
    return "float4" if FP4_NAME.search(name) else None


def fp32_simt_kernel(name: str) -> bool:
    """A matmul or convolution kernel that ran in float32 on the SIMT cores, from its name alone."""
    return bool(FP32_MATMUL_KERNEL.search(name)) and not TENSOR_CORE_KERNEL.search(name)


# --- one-off costs inside the recorded window (warmup) ---
# torch.compile compiling: dynamo's and inductor's timed phases, autotuning, loading generated code (matched on
# a Python frame's function, not its file: aot_autograd.py's forward is the compiled code running)
COMPILE_SPAN = re.compile(
    r"\(dynamo_timed\)|^_compile(\.|$)|\bcompile_inner\b|\bcompile_fx\w*|call_user_compiler|create_aot_dispatcher"
    r"|^GraphLowering\.|CachingAutotuner\.benchmark|benchmark_all_configs|async_compile|PyCodeCache\.load"
    r"|^TorchDynamo Compil|\bload_inline\b|\b_jit_compile\b|_write_ninja_file"  # cpp_extension builds
    r"|Autotuner\._bench|\bdo_bench\b")
# Triton's own autotuning, as Python frames: benchmarking configs (its run(), every call, is not one-off)
# (do_bench, by its function alone, is in COMPILE_SPAN; `_bench` is too common a name without its file)
AUTOTUNE_FRAME = re.compile(r"autotuner\.py\(\d+\): (_bench|prune_configs)$")


# JIT compilation that is not torch.compile's, by what it leaves inside the op that compiles: TorchScript's
# profiling executor (fusion groups, fallback graphs, prim:: nodes, NNC and nvFuser groups) and NVRTC. They
# mark an op that compiled only together with its length (warmup.py): a scripted function runs them every call.
JIT_SIGNATURE = re.compile(r"^fused_|^fallback_function|^prim::|TensorExprGroup|CudaFusionGroup|FusionGroup|^nvrtc")


def compile_span(name: str) -> bool:
    """A span of torch.compile compiling, by its name or, for a Python frame ('file.py(12): f'), its function;
    or Triton benchmarking its configs."""
    return bool(COMPILE_SPAN.search(name.split("): ", 1)[-1]) or AUTOTUNE_FRAME.search(name))


# runtime calls whose first use loads or sets up (kernel launches load a module lazily, attribute and occupancy
# queries, module and context calls): when one holds the host for milliseconds it is a one-off; copies and
# memsets that block are not (a pageable copy blocks every step)
SETUP_CALL = re.compile(
    r"^(cuda|cu|hip|hipExt)(LaunchKernel\w*|LaunchCooperativeKernel\w*|ModuleLaunchKernel|Func\w*|Occupancy\w*"
    r"|Module\w*|Library\w*|Ctx\w*|GetDevice\w*|DeviceGetAttribute|GetFuncBySymbol|StreamCreate\w*"
    r"|EventCreate\w*|GraphInstantiate\w*|StreamIsCapturing)$")
# library ops whose first call sets up the library on the host (cuDNN / MIOpen heuristics and handles,
# cuBLAS handles and workspaces): their first call in a window can hold the host for tens of ms
FIRST_CALL_OP = re.compile(
    r"^aten::(cudnn_\w+|miopen_\w+|_?convolution\w*|conv\d\w*|mm|addmm|bmm|baddbmm|linear|matmul|_scaled_mm"
    r"|_scaled_dot_product_\w+|lstm|gru|rnn_\w+|_cudnn_rnn|native_batch_norm|batch_norm|_batch_norm_impl_index)$")
# a torch.compile'd frame's region: its first call compiles the frame (on a trace without dynamo's own spans,
# the region's own time is the compilation), on a CPU as on a GPU
FIRST_CALL_REGION = re.compile(r"^Torch-Compiled Region")
