/* Placeholder until the protoc-c output lands. */
#pragma once
