// Config lives in core/ (data/ uses it too); this header keeps the layers' include path.
#pragma once

#include "../core/config.hpp"
