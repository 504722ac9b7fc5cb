"""What each op and kernel is: one of the breakdown categories of DESIGN.md.

Kernels are classified by the op that launched them first (ATen op names are a stable API), and by their own
name only when no launching op says anything (torch.compile's triton kernels, CUDA graphs, NCCL's threads).
Kernel names change with every library release (nvjet, cutlass, flash, triton ...), so name patterns are the
fallback, and the time they could not classify is reported, not hidden.
"""

import re

CATEGORIES = ("matmul", "other_compute", "memory", "communication", "data_loading", "host_overhead", "idle")
MATMUL, OTHER_COMPUTE, MEMORY, COMMUNICATION, DATA_LOADING, HOST_OVERHEAD, IDLE = range(len(CATEGORIES))
# categories that an op passes down to everything inside it (a copy inside a matmul op is the matmul's)
INHERITED = (MATMUL, MEMORY, COMMUNICATION, DATA_LOADING)

MATMUL_OP = re.compile(
    r"^aten::(mm|addmm|bmm|baddbmm|addbmm|_scaled_mm|_scaled_mm_v2|_int_mm|_grouped_mm|_scaled_grouped_mm"
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
    r"^(nccl|rccl|gloo|mpi|ucc|hccl):|^_?c10d(_functional)?::|^symm_mem::|^record_param_comms$|^ProcessGroup"
    r"|^(?!aten::)\w+::(\w*_)?(all_?reduce|all_?gather|reduce_?scatter|all_?to_?all|broadcast)\w*$", re.IGNORECASE)
FUSED_ATTENTION = re.compile(
    r"^aten::_?(scaled_dot_product_(flash|efficient|cudnn)_attention|flash_attention|efficient_attention)")
SOFTMAX = re.compile(r"^aten::_?(softmax|safe_softmax)$")
OPTIMIZER_STEP = re.compile(r"^Optimizer\.step#")
# torch.compile: the runtime around a compiled region (guards, wrappers) is framework overhead; the code that
# inductor generated for one graph runs inside the graph's annotation, and on a CPU its C++ kernels are
# recorded as ops only under torch._inductor.config.cpp.enable_kernel_profile, so the annotation's own time
# is those kernels' compute; where they were recorded, it is the Python wrapper's overhead
COMPILE_RUNTIME_OP = re.compile(
    r"^(TorchDynamo Cache Lookup|Torch-Compiled Region|Pregraph bytecode|AOTDispatcher Runtime Wrapper)")
COMPILED_GRAPH = re.compile(r"^## Call CompiledFxGraph")
GENERATED_KERNEL_OP = re.compile(r"cpp_fused_|^triton_")  # inductor's kernels, where recorded as ops
DATA_LOADING_OP = re.compile(r"^enumerate\(Data(Loader|Pipe)\)#|load_batch|wait_for_batch|data_?load", re.IGNORECASE)
# ops that only describe or allocate tensors: their time is framework overhead, never compute
METADATA_OP = re.compile(
    r"^(aten::(view|_view\w*|reshape|_reshape_alias|as_strided|transpose|t|permute|expand|expand_as|view_as|slice"
    r"|select|unsqueeze|squeeze|detach|alias|empty|empty_like|empty_strided|resize_|_unsafe_view|split"
    r"|split_with_sizes|narrow|lift_fresh|unbind|chunk|resolve_conj|resolve_neg|set_|item|_local_scalar_dense"
    r"|is_nonzero|result_type|broadcast_tensors|flatten|unflatten|numpy_T|_has_compatible_shallow_copy_type)|detach)$"
)

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

COMMUNICATION_KERNEL = re.compile(
    r"nccl|rccl|multimem_|all_?reduce|all_?gather|reduce_?scatter|all_?to_?all|cross_device_reduce", re.IGNORECASE)
MATMUL_KERNEL = re.compile(
    r"(?<!fb)gemm|cutlass|nvjet|xmma|cublas|wgmma|hmma|s884|s1688|h884|h1688|h16816|s16816|i8816|sm\d+_xmma|_mm_"
    r"|triton_tem"
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
    if MEMORY_OP.match(name):
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
