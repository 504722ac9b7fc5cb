"""The dtypes a trace names, in the two spellings Kineto writes: an op's recorded input type ("float",
"c10::BFloat16") and a collective's ScalarType ("Float", "BFloat16"); one row per dtype, with its size."""

# (torch name, recorded input type, ScalarType name, bytes per element)
DTYPES = (
    ("float32", "float", "Float", 4),
    ("bfloat16", "c10::BFloat16", "BFloat16", 2),
    ("float16", "c10::Half", "Half", 2),
    ("float64", "double", "Double", 8),
    ("int64", "long int", "Long", 8),
    ("int32", "int", "Int", 4),
    ("int16", "short int", "Short", 2),
    ("uint8", "unsigned char", "Byte", 1),
    ("int8", "signed char", "Char", 1),
    ("bool", "bool", "Bool", 1),
    ("float8_e4m3fn", "c10::Float8_e4m3fn", "Float8_e4m3fn", 1),
    ("float8_e5m2", "c10::Float8_e5m2", "Float8_e5m2", 1),
)
NAME_OF_INPUT_TYPE = {recorded: name for name, recorded, _, _ in DTYPES}
BYTES_OF_INPUT_TYPE = {recorded: size for _, recorded, _, size in DTYPES}
BYTES_OF_SCALAR_TYPE = {scalar: size for _, _, scalar, size in DTYPES}
