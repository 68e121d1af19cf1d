# cmake -P usm_embed.cmake -DINPUT=<file> -DOUTPUT=<header> -DNAME=<identifier> -DKIND=<spirv|text>
#
# Turns a compiled SPIR-V module into `inline constexpr std::uint32_t NAME_words[]`
# (and a std::span view NAME), or a text file into a std::string_view NAME.
# Run at build time; the header lands in the build tree, never in git.
cmake_minimum_required(VERSION 3.25)

file(READ "${INPUT}" hex HEX)
string(LENGTH "${hex}" hex_length)
if(KIND STREQUAL "spirv")
    math(EXPR rem "${hex_length} % 8")
    if(NOT rem EQUAL 0)
        message(FATAL_ERROR "${INPUT}: size is not a multiple of 4 bytes")
    endif()
    # SPIR-V words are little-endian: bytes b0 b1 b2 b3 -> 0xb3b2b1b0.
    string(REGEX REPLACE "(..)(..)(..)(..)" "0x\\4\\3\\2\\1u, " words "${hex}")
    set(body "inline constexpr std::uint32_t ${NAME}_words[] = {${words}};\n\
inline constexpr std::span<const std::uint32_t> ${NAME}{${NAME}_words};\n")
else()
    string(REGEX REPLACE "(..)" "'\\\\x\\1', " chars "${hex}")
    set(body "inline constexpr char ${NAME}_chars[] = {${chars}'\\0'};\n\
inline constexpr std::string_view ${NAME}{${NAME}_chars, sizeof(${NAME}_chars) - 1};\n")
endif()

file(WRITE "${OUTPUT}.tmp"
     "// Generated from ${INPUT} by cmake/usm_embed.cmake. Do not edit.\n"
     "#pragma once\n#include <cstdint>\n#include <span>\n#include <string_view>\n\n"
     "namespace usm::kernels {\n${body}}  // namespace usm::kernels\n")
file(RENAME "${OUTPUT}.tmp" "${OUTPUT}")
