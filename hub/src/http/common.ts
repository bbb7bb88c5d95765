import type { ApiError } from '@mirrormesh/broker'

export const idParams = { type: 'object', properties: { id: { type: 'string', maxLength: 64 } }, required: ['id'] } as const
export const notFound = (message: string): ApiError => ({ error: 'not_found', message })
