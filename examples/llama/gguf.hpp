// SPDX-License-Identifier: MIT
// A small GGUF reader: the header, the metadata key/values and the tensor directory of a GGUF v2/v3
// file, read whole into memory. Every length and offset is checked against the file's size, so a
// damaged file gives a gguf_error naming what is wrong, never a read out of bounds.
#ifndef KPC_EXAMPLES_LLAMA_GGUF_HPP
#define KPC_EXAMPLES_LLAMA_GGUF_HPP

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace llama {

struct gguf_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// ggml's tensor type ids for the types this example can dequantize.
enum class ggml_type : std::uint32_t { f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q8_0 = 8 };

struct gguf_tensor {
  std::string name;
  std::vector<std::uint64_t> dims;  ///< ggml order: dims[0] is the contiguous (innermost) one
  std::uint32_t type = 0;
  const std::byte* data = nullptr;
  std::size_t bytes = 0;
  std::uint64_t rows() const {  // product of all dims but the first
    std::uint64_t n = 1;
    for (std::size_t i = 1; i < dims.size(); ++i) n *= dims[i];
    return n;
  }
};

/// Scalar metadata; arrays are skipped except for their length (the tokenizer's vocabulary is
/// not needed here: token ids come from a file).
using gguf_value = std::variant<std::uint64_t, std::int64_t, double, bool, std::string>;

class gguf_file {
 public:
  explicit gguf_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    if (!in) throw gguf_error("cannot open " + path);
    bytes_.resize(static_cast<std::size_t>(in.tellg()));
    in.seekg(0);
    if (!in.read(reinterpret_cast<char*>(bytes_.data()), static_cast<std::streamsize>(bytes_.size())))
      throw gguf_error("cannot read " + path);
    parse();
  }

  /// A GGUF image already in memory (kept by the object, which tensors point into).
  explicit gguf_file(std::vector<std::byte> bytes) : bytes_(std::move(bytes)) { parse(); }

  const gguf_value* find(const std::string& key) const {
    auto it = metadata_.find(key);
    return it == metadata_.end() ? nullptr : &it->second;
  }
  std::string string_value(const std::string& key) const {
    const auto* s = std::get_if<std::string>(require(key));
    if (!s) throw gguf_error("metadata " + key + " is not a string");
    return *s;
  }
  std::uint64_t uint_value(const std::string& key) const {
    const gguf_value* v = require(key);
    if (const auto* u = std::get_if<std::uint64_t>(v)) return *u;
    if (const auto* i = std::get_if<std::int64_t>(v); i && *i >= 0) return static_cast<std::uint64_t>(*i);
    throw gguf_error("metadata " + key + " is not a non-negative integer");
  }
  double float_value(const std::string& key) const {
    const gguf_value* v = require(key);
    if (const auto* d = std::get_if<double>(v)) return *d;
    throw gguf_error("metadata " + key + " is not a float");
  }
  const gguf_tensor* tensor(const std::string& name) const {
    for (const gguf_tensor& t : tensors_)
      if (t.name == name) return &t;
    return nullptr;
  }
  std::size_t tensor_count() const { return tensors_.size(); }

 private:
  enum : std::uint32_t { u8, i8, u16, i16, u32, i32, f32, boolean, str, array, u64, i64, f64 };

  const gguf_value* require(const std::string& key) const {
    const gguf_value* v = find(key);
    if (!v) throw gguf_error("metadata " + key + " is missing");
    return v;
  }

  void need(std::size_t n) const {
    if (n > bytes_.size() - pos_) throw gguf_error("truncated file (at byte " + std::to_string(pos_) + ")");
  }
  template <class T>
  T read() {
    need(sizeof(T));
    T value;
    std::memcpy(&value, bytes_.data() + pos_, sizeof(T));  // GGUF is little-endian, as are our targets
    pos_ += sizeof(T);
    return value;
  }
  std::string read_string() {
    const auto n = read<std::uint64_t>();
    need(n);
    std::string s(reinterpret_cast<const char*>(bytes_.data()) + pos_, static_cast<std::size_t>(n));
    pos_ += static_cast<std::size_t>(n);
    return s;
  }
  static std::size_t scalar_size(std::uint32_t type) {
    switch (type) {
      case u8: case i8: case boolean: return 1;
      case u16: case i16: return 2;
      case u32: case i32: case f32: return 4;
      case u64: case i64: case f64: return 8;
      default: return 0;
    }
  }
  gguf_value read_value(std::uint32_t type) {
    switch (type) {
      case u8: return std::uint64_t{read<std::uint8_t>()};
      case u16: return std::uint64_t{read<std::uint16_t>()};
      case u32: return std::uint64_t{read<std::uint32_t>()};
      case u64: return read<std::uint64_t>();
      case i8: return std::int64_t{read<std::int8_t>()};
      case i16: return std::int64_t{read<std::int16_t>()};
      case i32: return std::int64_t{read<std::int32_t>()};
      case i64: return read<std::int64_t>();
      case f32: return double{read<float>()};
      case f64: return read<double>();
      case boolean: return read<std::uint8_t>() != 0;
      case str: return read_string();
      case array: {
        const auto item_type = read<std::uint32_t>();
        const auto count = read<std::uint64_t>();
        if (item_type == str) {
          for (std::uint64_t i = 0; i < count; ++i) read_string();
        } else {
          const std::size_t size = scalar_size(item_type);
          if (size == 0) throw gguf_error("unsupported array item type " + std::to_string(item_type));
          if (count > (bytes_.size() - pos_) / size) throw gguf_error("truncated array");
          pos_ += static_cast<std::size_t>(count) * size;
        }
        return count;  // arrays keep only their length
      }
      default: throw gguf_error("unknown metadata type " + std::to_string(type));
    }
  }

  static std::size_t tensor_bytes(std::uint32_t type, std::uint64_t elements, std::uint64_t row) {
    switch (static_cast<ggml_type>(type)) {
      case ggml_type::f32: return static_cast<std::size_t>(elements * 4);
      case ggml_type::f16: return static_cast<std::size_t>(elements * 2);
      case ggml_type::q4_0:
      case ggml_type::q4_1:
      case ggml_type::q8_0: {
        if (row % 32 != 0) throw gguf_error("a block-quantized tensor's rows must be multiples of 32");
        const std::size_t block = type == 2 ? 18 : type == 3 ? 20 : 34;
        return static_cast<std::size_t>(elements / 32) * block;
      }
    }
    throw gguf_error("tensor type " + std::to_string(type) + " is not supported by this example");
  }

  void parse() {
    if (read<std::uint32_t>() != 0x46554747u) throw gguf_error("not a GGUF file (bad magic)");
    const auto version = read<std::uint32_t>();
    if (version != 2 && version != 3) throw gguf_error("GGUF version " + std::to_string(version) + " unsupported");
    const auto n_tensors = read<std::uint64_t>();
    const auto n_metadata = read<std::uint64_t>();
    for (std::uint64_t i = 0; i < n_metadata; ++i) {
      std::string key = read_string();
      metadata_[key] = read_value(read<std::uint32_t>());
    }
    std::uint64_t alignment = 32;
    if (find("general.alignment")) alignment = uint_value("general.alignment");
    if (alignment == 0 || (alignment & (alignment - 1)) != 0) throw gguf_error("general.alignment is not a power of 2");
    struct entry {
      std::uint64_t offset;
      std::size_t bytes;
    };
    std::vector<entry> places;
    if (n_tensors > bytes_.size()) throw gguf_error("implausible tensor count");
    for (std::uint64_t i = 0; i < n_tensors; ++i) {
      gguf_tensor t;
      t.name = read_string();
      const auto n_dims = read<std::uint32_t>();
      if (n_dims == 0 || n_dims > 4) throw gguf_error(t.name + ": " + std::to_string(n_dims) + " dimensions");
      std::uint64_t elements = 1;
      for (std::uint32_t d = 0; d < n_dims; ++d) {
        t.dims.push_back(read<std::uint64_t>());
        if (t.dims.back() == 0 || t.dims.back() > (std::uint64_t{1} << 40) / elements)
          throw gguf_error(t.name + ": implausible shape");
        elements *= t.dims.back();
      }
      t.type = read<std::uint32_t>();
      places.push_back({read<std::uint64_t>(), tensor_bytes(t.type, elements, t.dims[0])});
      tensors_.push_back(std::move(t));
    }
    const std::size_t data_start = static_cast<std::size_t>((pos_ + alignment - 1) / alignment * alignment);
    for (std::size_t i = 0; i < tensors_.size(); ++i) {
      if (data_start > bytes_.size() || places[i].offset > bytes_.size() - data_start ||
          places[i].bytes > bytes_.size() - data_start - places[i].offset)
        throw gguf_error(tensors_[i].name + ": data lies outside the file");
      tensors_[i].data = bytes_.data() + data_start + places[i].offset;
      tensors_[i].bytes = places[i].bytes;
    }
  }

  std::vector<std::byte> bytes_;
  std::size_t pos_ = 0;
  std::map<std::string, gguf_value> metadata_;
  std::vector<gguf_tensor> tensors_;
};

}  // namespace llama

#endif  // KPC_EXAMPLES_LLAMA_GGUF_HPP
